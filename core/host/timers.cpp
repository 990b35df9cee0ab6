// timers: a steady_timer per wait, on the caller's executor.
#include "host/timers.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "host/suspension.hpp"

namespace plugd {

boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, duration};
    before_suspend();
    // Awaited as an operation (deferred): no start-up frame of Asio's beside this one, which
    // a request held on a timer would keep for the whole wait.
    co_await timer.async_wait(boost::asio::deferred);
}

}  // namespace plugd
