// topic_hub: the process's topics (plugd::topics): who subscribes where, and publishing to
// them from any thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <plugd/topics.hpp>

#include "host/subscriber_endpoint.hpp"
#include "host/topic_board.hpp"
#include "host/topic_directory.hpp"

namespace plugd {

class topic_bridge;

/// One per process (the host owns it), the same object for every plugin instance and
/// version. A board per serving thread holds the subscriptions of that thread's
/// connections; the directory says which boards have subscribers of a topic. A publish
/// copies the message once, reads the directory once, appends it inline on the calling
/// thread's own board and posts it once to each other board with subscribers of the topic:
/// one post per interested thread per message, never one per subscriber, and no lock per
/// subscriber. (SDK and core share `namespace plugd`, hence not `topics`.)
class topic_hub final : public topics {
  public:
    /// The longest topic name, in bytes.
    static constexpr std::size_t max_topic_bytes = 256;

    /// One board per serving thread's event loop; `max_message_bytes`: server.json's
    /// `topics.max_message_bytes`.
    topic_hub(std::vector<boost::asio::io_context*> loops, std::size_t max_message_bytes);
    ~topic_hub();
    topic_hub(const topic_hub&) = delete;
    topic_hub& operator=(const topic_hub&) = delete;

    // plugd::topics
    void subscribe(subscriber who, std::string_view topic) override;
    void unsubscribe(subscriber who, std::string_view topic) override;
    void publish(std::string_view topic, std::string_view message, message_type type,
                 subscriber except) override;

    /// Hands `m` to this process's subscribers of its topic only: a message that came from
    /// another process (the bridge), never sent back out. Any thread.
    void deliver(message_ref m);
    /// Where publish() sends each message after delivering it here (every other process);
    /// none by default. Set before any plugin starts; `bridge` outlives every publish.
    void bridge_to(topic_bridge* bridge) noexcept { bridge_ = bridge; }

    // subscribe and unsubscribe for the core's own endpoints, once resolved and checked (on
    // their thread).
    void add_subscription(subscriber_endpoint& who, std::string_view topic);
    void remove_subscription(subscriber_endpoint& who, std::string_view topic) noexcept;
    /// Ends every subscription of `who` (when it ends). On its thread.
    void leave(subscriber_endpoint& who) noexcept;
    /// `who`'s board, to take() and release() its messages.
    topic_board& board_of(const subscriber_endpoint& who) noexcept { return *boards_[who.board()]; }
    topic_board& board(std::size_t index) noexcept { return *boards_[index]; }
    std::size_t boards() const noexcept { return boards_.size(); }
    const topic_directory& directory() const noexcept { return directory_; }

    /// Where publishes are counted (/metrics): those made on serving thread `board`, a plain
    /// increment by that thread, and those made on any other thread, an atomic one. By
    /// default the hub's own counters; plugd points them into its traffic ledger, which a
    /// supervising master reads. Set before any plugin starts.
    void count_publishes_in(std::size_t board, std::uint64_t* counter) noexcept;
    void count_other_publishes_in(std::uint64_t* counter) noexcept;
    /// Publishes counted on threads other than the serving ones (read atomically).
    std::uint64_t other_publishes() const noexcept;

    /// The serving threads' event loops are about to go: from now on publish does nothing
    /// (plugins stopped after them may still publish). Once, on the control thread.
    void stop() noexcept { stopped_.store(true, std::memory_order_relaxed); }

  private:
    subscriber_endpoint& endpoint_of(subscriber who, const char* call) const;
    void deliver_from(const message_ref& m, std::ptrdiff_t here);

    std::vector<boost::asio::io_context*> loops_;
    std::size_t max_message_bytes_;
    topic_directory directory_;
    std::vector<std::unique_ptr<topic_board>> boards_;
    std::unique_ptr<std::uint64_t[]> own_counters_;  ///< boards, then the other threads
    std::vector<std::uint64_t*> publishes_;
    std::uint64_t* other_publishes_;
    std::atomic<bool> stopped_{false};
    topic_bridge* bridge_ = nullptr;
};

}  // namespace plugd
