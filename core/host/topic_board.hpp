// topic_board: one serving thread's part of the topics: for each topic that a connection of
// this thread subscribes to, the messages not yet delivered to all of them.
//
// Every member runs on the board's own thread, so nothing here is locked. A message
// published anywhere reaches a board once (appended inline when published on this thread,
// else in one post), whatever the number of its subscribers here: it is stored once in the
// topic's log, and each subscription is a cursor into that log. An entry lives until every
// subscription counted in it has moved past it; a subscription that falls more than its
// max_queued_messages behind is cut by its listener's slow_subscriber policy at once, so
// memory per subscriber is bounded and nobody waits for a slow one.
#pragma once

#include <boost/intrusive/list.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "host/subscriber_endpoint.hpp"
#include "host/topic_message.hpp"

namespace plugd {

class topic_directory;

/// A message in a topic's log, with how many subscriptions have still to move past it.
struct log_entry {
    message_ref message;
    std::uint64_t sequence;  ///< the board's order of arrival, across all its topics
    std::uint32_t pending;
};

/// The entries of one topic's log, oldest first: a ring that grows as needed and gives its
/// memory back when it empties, so an idle topic holds a few slots at most.
class entry_ring {
  public:
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    log_entry& operator[](std::size_t i) noexcept { return slots_[(head_ + i) & (capacity_ - 1)]; }
    log_entry& front() noexcept { return slots_[head_]; }
    void push_back(log_entry e);
    void pop_front() noexcept;
    std::size_t capacity() const noexcept { return capacity_; }

  private:
    std::unique_ptr<log_entry[]> slots_;
    std::size_t capacity_ = 0;  ///< 0 or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

using log_subscriptions = boost::intrusive::list<
    subscription,
    boost::intrusive::member_hook<subscription, topic_links::hook, &subscription::in_log>,
    boost::intrusive::constant_time_size<true>>;

/// One topic on one board. Entry i of the log has index `first + i`.
struct topic_log {
    std::string topic;
    entry_ring entries;
    std::uint64_t first = 0;
    log_subscriptions subscribers;

    std::uint64_t end() const noexcept { return first + entries.size(); }
    log_entry& at(std::uint64_t index) noexcept { return entries[index - first]; }
};

class topic_board {
  public:
    topic_board(std::size_t index, topic_directory& directory) noexcept
        : index_{index}, directory_{directory} {}
    ~topic_board();
    topic_board(const topic_board&) = delete;
    topic_board& operator=(const topic_board&) = delete;

    std::size_t index() const noexcept { return index_; }

    /// `who` receives `topic`'s messages appended from now on (nothing if it already does).
    void subscribe(subscriber_endpoint& who, std::string_view topic);
    /// `who` no longer receives `topic`'s; what was queued for it is given back.
    void unsubscribe(subscriber_endpoint& who, std::string_view topic) noexcept;
    /// Ends every subscription of `who`.
    void leave(subscriber_endpoint& who) noexcept;

    /// A message published to a topic: queued for each subscription here (but its
    /// origin's), waking the ones that wait, and cutting the ones it puts over their bound.
    void append(message_ref m);

    /// The oldest message queued for `who` across its topics, or null; it becomes the one
    /// `who` is delivering until release(). Call release() first.
    const topic_message* take(subscriber_endpoint& who) noexcept;
    /// `who` is done with the message take() returned: moves past it.
    void release(subscriber_endpoint& who) noexcept;
    /// Whether a message is queued for `who` beyond the one it is delivering: a send may
    /// wait for it, to go out in the same write (websocket_session's cork).
    bool has_more(const subscriber_endpoint& who) const noexcept;

    /// How many entries `topic`'s log holds here (0 without subscribers), and how many
    /// slots it has: what the tests of its memory bound read.
    std::size_t queued(std::string_view topic) const noexcept;
    std::size_t slots(std::string_view topic) const noexcept;
    /// Topics with subscribers here.
    std::size_t topics() const noexcept { return logs_.size(); }

  private:
    void remove(subscription& s) noexcept;
    /// Drops the entries at the front that no subscription needs any more.
    static void pop_released(topic_log& log) noexcept;
    /// Forgets a log that has no subscribers left (and so no entries).
    void forget_if_unused(topic_log& log) noexcept;
    const topic_log* find(std::string_view topic) const noexcept;

    std::size_t index_;
    topic_directory& directory_;
    std::unordered_map<std::string_view, std::unique_ptr<topic_log>> logs_;  ///< keys: log->topic
    std::uint64_t sequence_ = 0;
    std::uint64_t serials_ = 0;
    topic_log* appending_ = nullptr;     ///< not to be forgotten while append() works on it
    std::vector<subscription*> behind_;  ///< append's scratch: subscriptions over their bound
};

}  // namespace plugd
