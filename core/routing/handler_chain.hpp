// handler_chain: runs a request through a chain of plugin instances, as a listener's or a
// route's "chain" names them: every instance but the last through its filter(), the last
// through handle().
#pragma once

#include <cstddef>
#include <span>

#include <plugd/chain.hpp>
#include <plugd/handler.hpp>

namespace plugd {

/// A chain over handlers that outlive it (the request pins their versions). Calling it
/// costs no coroutine frame of its own: run() returns the next plugin's awaitable, so a
/// chain of one is exactly a handle() call.
class handler_chain final : public detail::chain_runner {
  public:
    handler_chain() = default;
    explicit handler_chain(std::span<plugd::handler* const> links) noexcept : links_{links} {}

    /// Runs the whole chain.
    task<void> operator()(request req, reply& out) const { return run(0, req, out); }

    task<void> run(std::size_t position, request req, reply& out) const override {
        plugd::handler& link = *links_[position];
        if (position + 1 == links_.size()) return link.handle(req, out);
        return link.filter(req, out, chain_next{*this, position + 1});
    }

    std::size_t size() const noexcept { return links_.size(); }

  private:
    std::span<plugd::handler* const> links_;
};

}  // namespace plugd
