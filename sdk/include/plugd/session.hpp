// plugd::session: one WebSocket session on an http listener, served by handler::serve_session.
#pragma once

#include <cstdint>
#include <string_view>

#include <plugd/event.hpp>
#include <plugd/task.hpp>

namespace plugd {

/// A WebSocket session (RFC 6455), after the upgrade request passed the route's filters and
/// the core answered 101. Implemented by the core: pings and pongs, the close handshake,
/// fragments, `max_message_bytes` (1009), UTF-8 in text messages (1007), pings every
/// `ping_interval_ms` and the idle timeout are the core's (the listener's `websocket`
/// object). Not thread-safe: use it from its serve_session call only, on its thread. It
/// subscribes to topics as a connection does (`topics::subscribe(session, topic)`).
/// Since SDK 1.5; members are only ever appended.
class session {
  public:
    /// The next thing that happens, in one wait: a whole message from the client (fragments
    /// joined; text is valid UTF-8), a message published on one of the session's topics, or
    /// the end (the event is false; event::close_code says why: the client's close code,
    /// 1001 when the server stops or the listener goes, 1000 after idle_timeout_ms, 1006
    /// when the client vanished without a close, or the code the core closed it with for a
    /// bad frame: 1002, 1007, 1009, or 1008 when it fell more than max_queued_messages
    /// behind its topics). When both kinds are ready they alternate. The event's views stay
    /// valid until the next call. At `reload_drain_timeout_ms` on an old version, the
    /// client gets 1001 and the pending call throws operation_aborted.
    virtual task<event> next() = 0;
    /// Sends one message. `data` must stay valid until the call completes. Throws
    /// std::invalid_argument for text that is not UTF-8, std::system_error once the session
    /// has ended or when the client does not read for write_timeout_ms.
    virtual task<void> send(std::string_view data, message_type type = message_type::text) = 0;
    /// Sends a published event (event::published) on as it is: the session keeps no copy
    /// of its own while it waits in the queue.
    ///
    /// While more published messages are queued for the session, send and forward return
    /// at once and their frames wait for the messages that follow, so that a busy room's
    /// client gets several per write: they go out when a send finds the queue empty,
    /// before next() waits, or as soon as the plugin waits on anything else.
    virtual task<void> forward(const event& published) = 0;
    /// Starts the close handshake with `code` (1000-1003, 1007-1014, 3000-4999) and a reason
    /// of at most 123 bytes (std::invalid_argument otherwise); next() then returns the end.
    /// The core waits for the client's close (at most 2 s) after serve_session returns. A
    /// session that serve_session leaves open is closed with 1000 (1011 when it threw).
    virtual task<void> close(std::uint16_t code = 1000, std::string_view reason = {}) = 0;
    /// The client's address, "ip:port".
    virtual std::string_view peer() const noexcept = 0;
    /// The listener's name (server.json).
    virtual std::string_view listener() const noexcept = 0;
    /// As request::route() and request::path_rest() for the upgrade request: the route's
    /// name and the path after its prefix ("/room/lobby" on route "/room/": "lobby").
    virtual std::string_view route() const noexcept = 0;
    virtual std::string_view path_rest() const noexcept = 0;
    /// What the route's filters attached to the upgrade request (request::attach), or empty.
    virtual std::string_view attached(std::string_view key) const noexcept = 0;

  protected:
    ~session() = default;
};

}  // namespace plugd
