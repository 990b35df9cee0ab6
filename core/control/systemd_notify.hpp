// systemd_notify: what plugd tells the service manager about itself (sd_notify, for a unit
// of Type=notify): ready, reloading, stopping, the generation serving, watchdog pings. The
// only file of the core that talks to libsystemd's notify API; without NOTIFY_SOCKET (not
// started by systemd) every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace plugd {

/// The main process's messages to systemd; a supervised worker never sends any (its master
/// keeps NOTIFY_SOCKET from it). Used on the control thread (single process) or the
/// master's loop only; not thread-safe.
class systemd_notify {
  public:
    /// Reads NOTIFY_SOCKET and the watchdog's interval (WATCHDOG_USEC, WATCHDOG_PID) from
    /// the environment; unsets the watchdog's variables, so no child process takes them for
    /// its own. Call it before any thread starts (unsetenv is not thread-safe).
    systemd_notify();

    /// Whether systemd (or a test) listens: NOTIFY_SOCKET is set.
    bool enabled() const noexcept { return enabled_; }

    /// READY=1 with STATUS=`status`: every listener serves. Sent once; later calls send
    /// STATUS= only.
    void ready(const std::string& status);
    /// RELOADING=1, MONOTONIC_USEC= (now, so systemd orders it after the reload request it
    /// sent) and STATUS=`status`. Before ready(): STATUS= only.
    void reloading(const std::string& status);
    /// READY=1 with STATUS=`status` after reloading(), whether the reload succeeded or not:
    /// the server serves either way. Before ready(): STATUS= only.
    void reloaded(const std::string& status);
    /// STOPPING=1 with STATUS=`status`: a drain or stop began. Sent once.
    void stopping(const std::string& status);
    /// STATUS=`status` alone.
    void status(const std::string& status);

    /// How often systemd expects WATCHDOG=1 (WatchdogSec=), if it expects it at all.
    std::optional<std::chrono::microseconds> watchdog_interval() const noexcept {
        return watchdog_;
    }
    /// WATCHDOG=1: the process is alive and not wedged.
    void watchdog();

  private:
    void send(const std::string& message);

    bool enabled_ = false;
    bool ready_ = false;
    bool stopping_ = false;
    bool warned_ = false;  ///< a failed send was logged (once: it would repeat every ping)
    std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace plugd
