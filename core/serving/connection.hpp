// connection: one accepted client, served by one coroutine on its shard's thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <list>
#include <memory>
#include <string>

#include "serving/shard.hpp"

namespace plugd {

/// How long the sweeper has seen the same operation (by its sequence number) in progress:
/// a lower bound of its age, within one sweep interval.
struct stall_watch {
    std::chrono::milliseconds observe(std::uint64_t sequence, std::chrono::milliseconds interval) {
        if (sequence != seen_) {
            seen_ = sequence;
            stalled_ = std::chrono::milliseconds{0};
        } else {
            stalled_ += interval;
        }
        return stalled_;
    }

  private:
    std::uint64_t seen_ = ~std::uint64_t{0};
    std::chrono::milliseconds stalled_{0};
};

struct connection {
    connection(shard& s, std::shared_ptr<route> r, tcp::socket sock);
    ~connection();

    /// Ends the connection as soon as it is between requests (now, if it is idle).
    void close_when_idle() noexcept;
    /// Waiting for a new request from now on (between requests, no byte of the next one
    /// received): joins the back of its route's idle list, whose front is closed to admit a
    /// new client at max_connections (nginx's "reusable connections").
    void wait_idle() noexcept;
    /// Bytes arrived (or the connection is closing): leaves the idle list.
    void stop_idle() noexcept { idle.unlink(); }
    /// Cancels the request running now: the client gets `reply` (nothing if it is empty)
    /// and the connection closes. `reply` must be a string literal.
    void abort(const char* reply) noexcept;
    /// This connection's limits; read at each use, so a reload's new limits apply at once.
    const struct limits& limits() const noexcept { return via->spec.limits; }

    shard& owner;
    std::shared_ptr<route> via;
    tcp::socket socket;
    std::string peer;  ///< "ip:port", formatted once
    asio::steady_timer watchdog_timer;
    /// Idle deadline: a complete request must arrive before it. Moved forward after each
    /// reply by a plain store; the watchdog re-arms only when its timer fires.
    std::chrono::steady_clock::time_point deadline;
    bool busy = false;     ///< handling a request or writing its reply
    bool writing = false;  ///< in async_write
    bool closing = false;  ///< asked to close, or refused a request: starts no new one
    // Timeouts without a clock read per request (clock_gettime is a visible share of a
    // pipelined request's cost): each request and each write bumps a counter, and the
    // shard's sweeper measures how long it has seen the same one still running.
    std::uint64_t requests = 0;
    std::uint64_t writes = 0;
    stall_watch request_stall;
    stall_watch write_stall;
    idle_entry idle;                    ///< in via->idle while waiting for a new request
    plugin_ref* active = nullptr;       ///< the version running the current request, if any
    const char* abort_reply = nullptr;  ///< set by abort(): the watchdog ends the request
    std::list<connection*>::iterator registration;
};

/// Serves one accepted socket until the client leaves, the connection idles out, or the
/// server closes the listener. Never throws.
asio::awaitable<void> serve_connection(shard& s, std::shared_ptr<route> r, tcp::socket sock);

}  // namespace plugd
