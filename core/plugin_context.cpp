// plugin_context: logging and timers for plugins, implemented in the core.
#include "plugin_context.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"

namespace plugd {

void plugin_context::log(log_level level, std::string_view message) const noexcept {
    try {
        log::write(level, "plugin " + name_ + ": " + std::string{message});
    } catch (...) {
        // Out of memory while building the line: dropping it is the only safe choice.
    }
}

task<void> plugin_context::sleep_for(std::chrono::milliseconds duration) const {
    // The timer is created here, in core code, on the connection's own executor; it
    // inherits the request's cancellation state, so timeouts and drains can end it.
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, duration};
    co_await timer.async_wait(boost::asio::use_awaitable);
}

}  // namespace plugd
