// timers: waiting without a thread (context::sleep_for, the pause of context::every).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>

namespace plugd {

/// Suspends the calling coroutine for `duration` on its own executor. The timer is core
/// code (see docs/architecture.md, "Why timers are host code"); it inherits the caller's
/// cancellation, so a timeout, a drain or a task's cancellation ends it with
/// operation_aborted.
boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration);
/// The same for a coroutine running on `loop` (a serving thread's), with a smaller timer.
boost::asio::awaitable<void> sleep_for(boost::asio::io_context::executor_type loop,
                                       std::chrono::milliseconds duration);

}  // namespace plugd
