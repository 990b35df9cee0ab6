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

/// An upgrade request's chain (WebSocket): the filters run as they do for any request, and
/// one may refuse it by answering (a 401, say), but the final plugin's place is the core's:
/// reaching it means every filter passed the request on, and the session begins after the
/// core's 101 (handler::serve_session). What filters set on the reply (header fields) goes
/// into the 101.
class upgrade_chain final : public detail::chain_runner {
  public:
    explicit upgrade_chain(std::span<plugd::handler* const> links) noexcept : links_{links} {}

    task<void> operator()(request req, reply& out) const { return run(0, req, out); }

    task<void> run(std::size_t position, request req, reply& out) const override {
        if (position + 1 == links_.size()) return reach();
        return links_[position]->filter(req, out, chain_next{*this, position + 1});
    }

    /// Whether every filter passed the request on.
    bool reached() const noexcept { return reached_; }

  private:
    task<void> reach() const {
        reached_ = true;
        co_return;
    }

    std::span<plugd::handler* const> links_;
    mutable bool reached_ = false;
};

}  // namespace plugd
