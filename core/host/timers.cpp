// timers: a steady_timer per wait, on the caller's executor.
#include "host/timers.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "host/suspension.hpp"

namespace plugd {

boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, duration};
    before_suspend();
    co_await timer.async_wait(boost::asio::use_awaitable);
}

}  // namespace plugd
