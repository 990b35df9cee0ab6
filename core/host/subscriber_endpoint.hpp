// subscriber_endpoint: what the topics need of a connection that subscribes: where it lives,
// its subscriptions, its limits, and how to wake it or tell it that it fell behind.
#pragma once

#include <boost/intrusive/list.hpp>

#include <cstddef>
#include <cstdint>

#include "config.hpp"
#include "host/topic_message.hpp"

namespace plugd {

class subscriber_endpoint;
struct topic_log;
class topic_hub;

namespace topic_links {
using hook = boost::intrusive::list_member_hook<>;
}

/// One endpoint's subscription to one topic on its board: a cursor into that topic's log.
/// It is counted in the `pending` of every entry of the log from `next` on, which is what
/// keeps those entries (and no others) alive for it.
struct subscription {
    subscriber_endpoint* who;
    topic_log* log;
    std::uint64_t next;  ///< the log index of the first entry it has not moved past
    topic_links::hook in_log;
    topic_links::hook of_endpoint;
};

using endpoint_subscriptions = boost::intrusive::list<
    subscription,
    boost::intrusive::member_hook<subscription, topic_links::hook, &subscription::of_endpoint>,
    boost::intrusive::constant_time_size<false>>;

/// The core's side of a subscriber (a raw connection, a test harness connection): the
/// topics keep its subscriptions here and on its board, and call it back on its own
/// thread. Everything here belongs to that thread (the board's: a serving thread).
class subscriber_endpoint {
  public:
    subscriber_endpoint(const subscriber_endpoint&) = delete;
    subscriber_endpoint& operator=(const subscriber_endpoint&) = delete;

    /// The serving thread (board) it lives on.
    std::size_t board() const noexcept { return board_; }
    /// Its limits (max_queued_messages, slow_subscriber), read at each use so that a reload
    /// applies new ones at once.
    const limits& subscriber_limits() const noexcept { return *limits_; }

    /// Messages may be queued for it now: called on its thread, once per wait (when
    /// `waiting`), from inside a publish or a delivery. Must not run plugin code.
    virtual void wake() noexcept = 0;
    /// It fell more than max_queued_messages behind on a topic; `policy` was applied
    /// already (unsubscribed from that topic, or from every topic for `close`). Counts it,
    /// and for `close` ends the connection. Must not run plugin code.
    virtual void fell_behind(slow_subscriber_policy policy) noexcept = 0;

    // State the topic board keeps (on this endpoint's thread only).
    topic_hub* hub = nullptr;  ///< set at its first subscription
    std::uint64_t serial = 0;  ///< unique in the process once it has subscribed; 0 before
    endpoint_subscriptions subscriptions;
    /// The subscription whose entry next() returned last: moved past at the next call.
    subscription* delivering = nullptr;
    /// The message next() returned last, when its subscription ended before the next call
    /// (the plugin may still read the event's views).
    message_ref kept;
    /// Waiting in next() for bytes or a message: the next message queued wakes it.
    bool waiting = false;

  protected:
    subscriber_endpoint(std::size_t board, const limits& l) noexcept : board_{board}, limits_{&l} {}
    /// The derived class calls leave() before this runs (its hub ends every subscription).
    ~subscriber_endpoint() = default;
    /// Ends every subscription (its hub's leave): call from the derived destructor.
    void leave() noexcept;

  private:
    std::size_t board_;
    const limits* limits_;
};

}  // namespace plugd
