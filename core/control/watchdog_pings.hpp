// watchdog_pings: WATCHDOG=1 to systemd at half of WatchdogSec=, from the control thread's
// (or the master's) event loop, and only while the process is not wedged.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>

namespace plugd {

class systemd_notify;

/// A ping that comes from the loop which runs reloads and stops proves that loop runs; a
/// serving thread stuck in a handler is seen by `healthy` (the stall monitor), which
/// withholds the ping: systemd then stops (and, with Restart=, restarts) the process.
/// Does nothing unless systemd asked for pings (WatchdogSec=). Touched on that loop only.
class watchdog_pings {
  public:
    /// `healthy`: whether to ping now (called on `loop`'s thread).
    watchdog_pings(boost::asio::io_context& loop, systemd_notify& notify,
                   std::function<bool()> healthy);
    /// Pings at once, then every half interval, until stop().
    void start();
    /// At the end of the shutdown: the timer no longer keeps the loop running.
    void stop();

  private:
    void ping();

    systemd_notify& notify_;
    std::function<bool()> healthy_;
    boost::asio::steady_timer timer_;
    bool stopped_ = false;
    bool withheld_ = false;  ///< the last ping was withheld: say so once, and when it resumes
};

}  // namespace plugd
