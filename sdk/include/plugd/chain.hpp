// plugd::chain_next: how a filter runs the rest of its chain. Since SDK 1.4.
#pragma once

#include <cstddef>

#include <plugd/reply.hpp>
#include <plugd/request.hpp>
#include <plugd/task.hpp>

namespace plugd {

namespace detail {

/// The plugin instances a request runs through, in order. Implemented by the core (and by
/// the test harness): a plugin only calls it, through chain_next.
class chain_runner {
  public:
    /// Runs link `position` of the chain: the next filter's `filter`, or the final
    /// plugin's `handle`.
    virtual task<void> run(std::size_t position, request req, reply& out) const = 0;

  protected:
    ~chain_runner() = default;
};

}  // namespace detail

/// The rest of a filter's chain (handler::filter): the filters after it and the final
/// plugin. Awaiting it runs them with `req` and `out` — usually the request and reply the
/// filter was given; a filter may pass a copy of the request or a reply of its own (to see
/// the body before the client does) instead. A filter that answers by itself does not call
/// it. Cheap to copy; valid until the filter call that received it completes.
class chain_next {
  public:
    chain_next(const detail::chain_runner& runner, std::size_t position) noexcept
        : runner_{&runner}, position_{position} {}

    /// Runs the rest of the chain; rethrows what it threw (an exception that leaves the
    /// filter too fails the request, as a handler's does).
    task<void> operator()(request req, reply& out) const {
        return runner_->run(position_, req, out);
    }

  private:
    const detail::chain_runner* runner_;
    std::size_t position_;
};

}  // namespace plugd
