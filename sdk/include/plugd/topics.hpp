// plugd::topics: named channels of messages between a process's connections (publish and
// subscribe), and plugd::subscriber, who receives them.
#pragma once

#include <cstdint>
#include <string_view>

#include <plugd/connection.hpp>
#include <plugd/event.hpp>
#include <plugd/session.hpp>

namespace plugd {

/// Who receives a topic's messages: a connection the core handed to `serve`, or a
/// WebSocket session it handed to `serve_session` (implicitly made from either). The
/// default one is nobody (publish's "except no one"). Trivially copyable; its layout is
/// fixed. Since SDK 1.5.
class subscriber {
  public:
    subscriber() noexcept = default;
    subscriber(connection& c) noexcept : target_{&c}, kind_{kind::connection} {}
    subscriber(session& s) noexcept : target_{&s}, kind_{kind::session} {}

    /// For the core: what it was made from.
    bool is_connection() const noexcept { return kind_ == kind::connection; }
    bool is_session() const noexcept { return kind_ == kind::session; }
    void* target() const noexcept { return target_; }

  private:
    enum class kind : std::uint8_t { nobody, connection, session };
    void* target_ = nullptr;
    kind kind_ = kind::nobody;
};

/// Named channels of messages: a connection or session subscribes to a topic, and whatever
/// anyone publishes to it (a handler, another connection or session, a background task, an
/// offloaded job, start() or stop(), on any thread) reaches it through `connection::next`
/// or `session::next`. One namespace
/// for the whole process, shared by every plugin instance and version: choose a prefix
/// ("chat/"). With `"workers": N`, each worker process has its own topics, unless
/// server.json's `topics.redis` bridges them (and other plugd processes) through Redis.
///
/// Each subscriber has a bounded queue: a connection or session that falls more than the listener's
/// `limits.max_queued_messages` messages behind on a topic (counting from the first it has
/// not moved past with next()) is closed (next() returns closed with 1008, a WebSocket
/// client gets close 1008, and a write to a client that does not read ends with
/// operation_aborted) or unsubscribed from that topic,
/// as the listener's `limits.slow_subscriber` says. Nobody else waits
/// for it: a publish never waits, and the message is stored once for all its subscribers.
///
/// Implemented by the core (see context::topics); thread-safety is said per member. Since
/// SDK 1.5; members are only ever appended.
class topics {
  public:
    /// `who` receives the messages published to `topic` (1 to 256 bytes) from now on, through
    /// next(). Calling it again for the same topic does nothing. The subscription belongs to
    /// the core, not to a plugin version: it ends with the connection (or unsubscribe), so a
    /// connection kept on an old version across a reload still receives what the new version
    /// publishes. Call it from `who`'s own serve() or serve_session() (its thread):
    /// std::logic_error otherwise; std::invalid_argument for an empty subscriber, a
    /// connection or session the core did not make, or a topic of the wrong size.
    virtual void subscribe(subscriber who, std::string_view topic) = 0;
    /// `who` stops receiving `topic`'s messages; the ones queued for it are dropped. Nothing
    /// happens when it was not subscribed. The same rules as subscribe.
    virtual void unsubscribe(subscriber who, std::string_view topic) = 0;
    /// Sends `message` to every subscriber of `topic` but `except` (the sender, in a chat),
    /// on any thread, without waiting: `message` is copied once and delivered later, on each
    /// subscriber's own thread. Messages published by one thread to one topic arrive in
    /// that order; one thread's messages to several topics reach a subscriber of them all in
    /// that order too. Throws std::length_error above `topics.max_message_bytes` (server.json,
    /// default 65536), std::invalid_argument for a topic of the wrong size or for a text
    /// message that is not UTF-8 (a WebSocket client would refuse it: publish binary). `except`
    /// must be used from its own thread (std::logic_error otherwise): the connection that
    /// publishes from its serve() or serve_session().
    virtual void publish(std::string_view topic, std::string_view message,
                         message_type type = message_type::text, subscriber except = {}) = 0;

  protected:
    ~topics() = default;
};

}  // namespace plugd
