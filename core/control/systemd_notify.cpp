// systemd_notify: sd_notify(3) and sd_watchdog_enabled(3) from libsystemd.
#include "control/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "log.hpp"

namespace plugd {
namespace {

// CLOCK_MONOTONIC in µs, the clock systemd compares MONOTONIC_USEC with.
std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

// STATUS= is one line: a message with a newline would end it early.
std::string status_line(std::string status) {
    for (char& c : status) {
        if (c == '\n') c = ' ';
    }
    return "STATUS=" + status;
}

}  // namespace

systemd_notify::systemd_notify() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket && *socket;
    std::uint64_t usec = 0;
    // 1: WATCHDOG_USEC and WATCHDOG_PID are unset, whether or not they were meant for this
    // process (WATCHDOG_PID names another one when a parent passed them on by mistake).
    const int r = ::sd_watchdog_enabled(1, &usec);
    if (r > 0 && usec > 0) watchdog_ = std::chrono::microseconds{usec};
    if (r < 0) {
        log::warn(std::string{"systemd: WATCHDOG_USEC or WATCHDOG_PID is malformed ("} +
                  std::strerror(-r) +
                  "): no watchdog pings are sent; check WatchdogSec= in the unit");
    }
    if (watchdog_ && !enabled_) {
        log::warn(
            "systemd: WatchdogSec= is set but NOTIFY_SOCKET is not: no watchdog pings can be "
            "sent and systemd will stop plugd; use Type=notify (or remove WatchdogSec=)");
    }
}

void systemd_notify::send(const std::string& message) {
    if (!enabled_) return;
    // 0: NOTIFY_SOCKET stays set for the next message.
    const int r = ::sd_notify(0, message.c_str());
    if (r < 0 && !std::exchange(warned_, true)) {
        log::warn("systemd: cannot send \"" + message.substr(0, message.find('\n')) +
                  "\" to NOTIFY_SOCKET (" + std::strerror(-r) +
                  "); systemd may consider plugd not ready or hung: check the unit's "
                  "NotifyAccess= (main) and that NOTIFY_SOCKET names a datagram socket");
    }
}

void systemd_notify::ready(const std::string& status) {
    if (std::exchange(ready_, true)) {
        send(status_line(status));
        return;
    }
    send("READY=1\n" + status_line(status));
}

void systemd_notify::reloading(const std::string& status) {
    if (!ready_ || stopping_) {
        send(status_line(status));
        return;
    }
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()) + "\n" +
         status_line(status));
}

void systemd_notify::reloaded(const std::string& status) {
    if (!ready_ || stopping_) {
        send(status_line(status));
        return;
    }
    send("READY=1\n" + status_line(status));
}

void systemd_notify::stopping(const std::string& status) {
    if (std::exchange(stopping_, true)) {
        send(status_line(status));
        return;
    }
    send("STOPPING=1\n" + status_line(status));
}

void systemd_notify::status(const std::string& status) {
    send(status_line(status));
}

void systemd_notify::watchdog() {
    send("WATCHDOG=1");
}

}  // namespace plugd
