// plugd::event: what connection::next returned: a client's message, a message published on
// one of the connection's topics, or the end.
#pragma once

#include <cstdint>
#include <string_view>

namespace plugd {

/// What kind of bytes a message holds: text (UTF-8: the core checks it where a WebSocket
/// client would, in a client's message and in topics::publish) or binary; raw connections
/// pass the bytes on as they are. Since SDK 1.5.
enum class message_type : std::uint8_t { text, binary };

namespace detail {

/// What the core fills for the event next() returned last. Read it through `event`.
/// Members are only ever appended. Since SDK 1.5.
struct event_state {
    std::uint8_t kind = 2;  ///< 0 a client's message, 1 published, 2 closed
    message_type type = message_type::text;
    std::uint16_t close_code = 0;  ///< closed: why (see event::close_code)
    std::string_view data;         ///< the message (without its delimiter); closed: a reason
    std::string_view topic;        ///< published: the topic it was published to
};

}  // namespace detail

/// What `connection::next` or `session::next` returned: one pointer to the core's state of
/// that connection or session, so its layout never changes while the state behind it grows.
/// Trivially copyable.
///
/// Lifetime: the views (data, topic) stay valid until the next call to next() on the same
/// connection or session, or until serve() or serve_session() returns; copy what you keep
/// longer. Since SDK 1.5.
class event {
  public:
    explicit event(const detail::event_state* s) noexcept : s_{s} {}

    /// False once the connection is closed (see close_code): `while (auto ev = co_await
    /// c.next("\n")) { ... }` serves until then.
    explicit operator bool() const noexcept { return s_->kind != 2; }
    /// True for a message published on one of the connection's topics (topics::subscribe),
    /// false for a message from the client.
    bool published() const noexcept { return s_->kind == 1; }
    /// A client's message: text on a raw connection, the frame's type on a WebSocket.
    /// Published: what publish() was given.
    message_type type() const noexcept { return s_->type; }
    /// The message: a client's message without its delimiter, or the published bytes as
    /// they were published. Closed: a short reason ("closed by the client").
    std::string_view data() const noexcept { return s_->data; }
    /// Published: the topic it was published to; empty otherwise.
    std::string_view topic() const noexcept { return s_->topic; }
    /// Closed: why. On a raw connection: 1000 the client closed the connection, 1001 the
    /// server ended it (a stop, the listener removed by a reload, idle_timeout_ms), 1008 it
    /// fell more than `max_queued_messages` behind on its topics (`slow_subscriber`
    /// "close"). On a WebSocket session: see session::next. 0 while open.
    std::uint16_t close_code() const noexcept { return s_->close_code; }

  private:
    const detail::event_state* s_;
};

}  // namespace plugd
