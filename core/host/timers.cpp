// timers: a timer per wait, on the caller's event loop.
#include "host/timers.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "host/suspension.hpp"

namespace plugd {

namespace asio = boost::asio;

// Awaited as operations (deferred): no start-up frame of Asio's beside these, which a
// request held on a timer would keep for the whole wait.

asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
    asio::steady_timer timer{co_await asio::this_coro::executor, duration};
    before_suspend();
    co_await timer.async_wait(asio::deferred);
}

asio::awaitable<void> sleep_for(asio::io_context::executor_type loop,
                                std::chrono::milliseconds duration) {
    // Bound to the io_context by type, not through any_io_executor: the timer and its wait
    // operation are about 40 bytes smaller each.
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>,
                               asio::io_context::executor_type>
        timer{loop, duration};
    before_suspend();
    co_await timer.async_wait(asio::deferred);
}

}  // namespace plugd
