// plugd::connection: a whole client connection, handed to a plugin on a `raw` listener.
#pragma once

#include <string_view>

#include <plugd/event.hpp>
#include <plugd/stream.hpp>

namespace plugd {

/// The client's connection on a listener with `"framing": "raw"`: the plugin speaks its own
/// protocol over it (see handler::serve). The socket, its buffer and its timers are the
/// core's, and the listener's limits hold on every call:
///
/// - when the client closes, `read_some` returns 0, and `read_until` and `read_exactly`
///   return an empty string if no byte of the next message had arrived (they throw
///   std::runtime_error when it closed in the middle of one), so a loop reads:
///   `for (std::string m; !(m = co_await conn.read_until("\r\n")).empty();) { ... }`
/// - a read waits at most `idle_timeout_ms`; then, or when the server stops or the listener
///   is removed, it ends as if the client had closed; so may a read that waits with
///   nothing buffered when the listener is at `max_connections` and needs room;
/// - `read_until` and `read_exactly` refuse more than `max_request_bytes` with
///   std::length_error, and once a message's first bytes are in, its rest must arrive
///   within `request_timeout_ms` (a client trickling a byte now and then is closed);
/// - a write that the client does not read within `write_timeout_ms`, and work between two
///   calls longer than `request_timeout_ms`, cancel the connection: the pending call throws
///   `boost::system::system_error` (operation_aborted); let it propagate.
///
/// `recycle()` does nothing here; `close()` closes the connection at once.
/// Not thread-safe: use it only from the `serve` call that received it, on its thread.
/// Since SDK 1.3; members are only ever appended.
class connection : public stream {
  public:
    /// The client's address as `ip:port` (IPv6 as `[ip]:port`).
    virtual std::string_view peer() const noexcept = 0;
    /// The name of the listener (server.json `/listeners/N/name`) that accepted it.
    virtual std::string_view listener() const noexcept = 0;

    // ---- since SDK 1.5 (appended: the members above keep their places) ----

    /// The next thing that happens on this connection, in one wait: the client's next
    /// message up to `delimiter` (returned without it), a message published on one of the
    /// connection's topics (topics::subscribe), or the end (the event is false; see
    /// event::close_code). When both kinds are ready they alternate, so neither starves the
    /// other. A chat is a loop:
    ///
    ///     while (auto ev = co_await conn.next("\n")) {
    ///         if (ev.published()) co_await conn.write(std::string{ev.data()} + "\n");
    ///         else ctx.topics().publish(room, ev.data(), ev.type(), conn);
    ///     }
    ///
    /// It has read_until's limits: std::length_error past max_request_bytes without the
    /// delimiter, the rest of a message begun within request_timeout_ms; it waits at most
    /// idle_timeout_ms for either kind (then, or when the server stops, it returns closed).
    /// A client that closes in the middle of a message: closed (the unfinished message is
    /// dropped). The views of the event it returned last stay valid until the next call.
    /// Mixing it with read_until on the same connection is allowed: bytes one leaves
    /// buffered, the other reads. Same thread rules as every other member.
    virtual task<event> next(std::string_view delimiter) = 0;
};

}  // namespace plugd
