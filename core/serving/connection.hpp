// connection: one accepted client, served by one coroutine on its shard's thread.
//
// A connection is its transport (the bytes), its framing's codec (what they mean: the
// serving loop in connection.cpp is one template over framing/codec.hpp) and the state the
// shard's sweeper times. What a connection costs is what plugd's memory scales with, so it
// holds little: no read buffer while it waits for a request (it waits for readability,
// reads into the shard's scratch buffer and keeps only an unhandled request's bytes), no
// timer (the sweeper enforces every timeout), and at most one coroutine. A connection
// quiet for a sweep is "parked": its coroutine ends and a plain callback waits for its
// next bytes, as nginx's keep-alive state does. A new connection starts parked, unless its
// framing hands it to the plugin at once (raw). Busy connections keep their coroutine, so
// a steady stream of requests allocates nothing.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "routing/request_attributes.hpp"
#include "serving/buffer_pool.hpp"
#include "serving/shard.hpp"
#include "serving/traffic_stats.hpp"
#include "transport/transport.hpp"

namespace plugd {

/// How a request ended without the handler's reply: what /metrics counts it as, the line
/// a line or oneshot client gets instead (empty: none, the connection just closes) and the
/// status an HTTP client gets.
struct request_failure {
    request_error kind;
    const char* line;
    int status;
};

namespace failure {
inline constexpr request_failure exception{request_error::exception, "ERR internal error", 500};
/// The handler outlived request_timeout_ms: the gateway's kind of timeout, as a proxy
/// whose upstream did not answer in time reports it.
inline constexpr request_failure timeout{request_error::timeout, "ERR timeout", 504};
/// The service, not the request: retrying elsewhere or later may succeed.
inline constexpr request_failure busy{request_error::busy, "ERR busy", 503};
inline constexpr request_failure drain_timeout{request_error::drain_timeout,
                                               "ERR reload drain timeout", 503};
inline constexpr request_failure write_timeout{request_error::write_timeout, "", 0};
/// A subscriber that fell max_queued_messages behind (slow_subscriber "close") while the
/// plugin waited to write to it: counted by the topics' own counter, not as a request error.
inline constexpr request_failure slow_subscriber{request_error::write_timeout, "", 0};
}  // namespace failure

/// How long a connection has been in its current phase, as the sweeper sees it: the same
/// phase (by its sequence number) at consecutive sweeps ages by one interval each time, so
/// the age is a lower bound within one sweep interval, and no clock is read per request.
struct phase_clock {
    std::chrono::milliseconds age(std::uint64_t sequence, std::chrono::milliseconds interval) {
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

/// Replies a connection finished before the request it handles now, while they wait to be
/// written with the ones after it (pipelining): bytes [sent, end) of *out. It lives in the
/// serving coroutine's frame, so an idle connection pays one pointer for it.
struct unsent_replies {
    std::string* out = nullptr;
    std::size_t end = 0;   ///< bytes of *out that are whole replies
    std::size_t sent = 0;  ///< bytes of *out already written
};

class websocket_session;

struct client_connection {
    /// Joins `s`'s connections. Allocate it with new and call start(): it deletes itself
    /// once it has closed.
    client_connection(shard& s, std::shared_ptr<shard_listener> r, transport t);
    ~client_connection();
    client_connection(const client_connection&) = delete;
    client_connection& operator=(const client_connection&) = delete;

    /// Waiting for a new request from now on (between requests, no byte of the next one
    /// received): joins the back of its listener's idle list, whose front is closed to admit a
    /// new client at max_connections (nginx's "reusable connections").
    void wait_idle() noexcept;
    /// Serves requests until the client leaves, the connection times out or the listener
    /// closes. Never throws.
    void start() noexcept;
    /// Asks a connection waiting for bytes in its coroutine to park (see above).
    void park() noexcept;
    /// Waits for the next bytes without a coroutine (parked), or resumes at once if some
    /// have arrived.
    void await_request() noexcept;
    /// Runs the coroutine that serves requests until the connection parks or ends, or
    /// upgrades to a WebSocket session (then serve_websocket()).
    void resume() noexcept;
    /// Runs the plugin's coroutine of its WebSocket session (`session`, made by the
    /// upgrade); session_served() then ends the session and closes.
    void serve_websocket() noexcept;
    void session_served(std::exception_ptr error) noexcept;
    /// TLS: steps the handshake on, waiting as OpenSSL asks, then serves as a new plain
    /// connection would; a failed one is counted and closed.
    void continue_handshake() noexcept;
    /// Closes the socket; the connection is deleted from a handler of its own.
    void finish() noexcept;
    /// A request (or a stream's message) that did not arrive whole within
    /// request_timeout_ms: sends what the codec says to such a client (HTTP: 408) if the
    /// transport takes it at once (it is a few bytes), then closes.
    void too_slow() noexcept;
    /// Writes as much of `unsent`'s replies as the socket takes without waiting: called
    /// when the running handler is about to wait (see shard::hold_unsent).
    void write_unsent() noexcept;
    /// Ends the connection as soon as it is between requests (now, if it is idle).
    void close_when_idle() noexcept;
    /// Cancels the request (or the reply's write) running now: the client gets `why`'s
    /// reply (nothing if its line is empty) and the connection closes.
    void abort(const request_failure& why) noexcept;
    /// It fell more than max_queued_messages behind on a topic (after `policy` was applied):
    /// counts and says so; for `close`, ends a write the client does not read.
    void subscriber_fell_behind(slow_subscriber_policy policy) noexcept;
    /// This connection's limits; read at each use, so a reload's new limits apply at once.
    const struct limits& limits() const noexcept { return via->spec.limits; }

    /// What the connection is doing, for the sweeper's timeouts.
    enum class phase_kind : std::uint8_t {
        waiting,      ///< for a complete request (idle_timeout_ms)
        receiving,    ///< the rest of a request begun (request_timeout_ms, then 408 over
                      ///< http; on raw, of a message read_until or read_exactly began: closed)
        handling,     ///< a request (request_timeout_ms)
        writing,      ///< a reply (write_timeout_ms)
        lingering,    ///< discarding input after refusing a request (a few seconds at most)
        handshaking,  ///< TLS, before the first request (request_timeout_ms, then closed)
    };
    /// Starts a phase. The sequence number lets the sweeper time phases without a clock
    /// read per request (clock_gettime was a visible share of a pipelined request's cost).
    void begin_phase(phase_kind p) noexcept {
        phase = p;
        ++phase_sequence;
    }

    shard& owner;
    std::shared_ptr<shard_listener> via;
    transport wire;    ///< the bytes to and from the client
    std::string peer;  ///< "ip:port", formatted once
    /// Bound to the connection's coroutine: emitting it cancels what the coroutine awaits,
    /// however deep in a handler.
    boost::asio::cancellation_signal cancel;
    request_bytes input;
    phase_kind phase = phase_kind::waiting;
    /// The listener's framing when this connection was accepted: a reload that changes it
    /// applies to new connections only (a client keeps the protocol it started with).
    framing_kind framing;
    bool in_read_wait = false;  ///< waiting until readable: close_when_idle and park wake it
    bool parked = false;        ///< waiting without a coroutine
    bool park_requested = false;
    bool closing = false;    ///< asked to close, or refused a request: starts no new one
    bool streaming = false;  ///< handler::serve owns it (its reads are the plugin's: no parking)
    /// A WebSocket session, after its upgrade: what the sweeper pings and times out, and a
    /// drain ends with 1001. Owned by the session's coroutine.
    websocket_session* session = nullptr;
    std::uint64_t phase_sequence = 0;
    phase_clock phase_age;
    /// The chain running the current request, if any, and the table it pinned.
    const chain_slot* active = nullptr;
    dispatch_table* pinned = nullptr;
    /// Where the last request counted (ledger memory, never freed): a write timeout
    /// counts there.
    request_stats* counted = nullptr;
    /// What filters attach to the request running now (request::attach); made by the
    /// connection's first request through a chain with filters, reused by the next ones.
    std::unique_ptr<attribute_store> attributes;
    const request_failure* aborted = nullptr;  ///< set by abort(): the request's outcome
    unsent_replies* unsent = nullptr;  ///< while a request runs, with replies before it unsent
    connection_link in_shard;          ///< in the shard's list of its connections
    /// In via->idle while waiting, no byte of a request received; while a request runs
    /// with replies before it unsent, in the shard's list of such (never both at once).
    connection_link idle;
};

}  // namespace plugd
