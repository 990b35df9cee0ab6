// watchdog_pings: the timer behind systemd's watchdog.
#include "control/watchdog_pings.hpp"

#include <utility>

#include "control/systemd_notify.hpp"
#include "log.hpp"

namespace plugd {

watchdog_pings::watchdog_pings(boost::asio::io_context& loop, systemd_notify& notify,
                               std::function<bool()> healthy)
    : notify_{notify}, healthy_{std::move(healthy)}, timer_{loop} {}

void watchdog_pings::start() {
    const auto interval = notify_.watchdog_interval();
    if (!interval || !notify_.enabled()) return;
    log::info("systemd: watchdog expects a ping every " + std::to_string(interval->count() / 1000) +
              " ms (WatchdogSec=): pinging every " + std::to_string(interval->count() / 2000) +
              " ms from the control loop");
    ping();
}

void watchdog_pings::stop() {
    stopped_ = true;
    timer_.cancel();
}

void watchdog_pings::ping() {
    if (stopped_) return;
    if (healthy_()) {
        if (std::exchange(withheld_, false))
            log::info("systemd: watchdog pings resume: no serving thread is stalled any more");
        notify_.watchdog();
    } else if (!std::exchange(withheld_, true)) {
        log::error(
            "systemd: watchdog ping withheld: a serving thread is stalled (see the stall "
            "line above); systemd stops plugd if it stays stalled past WatchdogSec=");
    }
    timer_.expires_after(*notify_.watchdog_interval() / 2);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) ping();
    });
}

}  // namespace plugd
