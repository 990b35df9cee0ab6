// topic_bridge: the process's topics carried through Redis pub/sub to every other process
// sharing that Redis (the workers of `"workers": N`, other plugd instances).
#pragma once

#include <boost/asio/io_context.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "host/topic_bridge_stats.hpp"
#include "host/topic_message.hpp"

namespace plugd {

class topic_hub;

/// Two connections of its own to Redis, both on one serving thread's event loop (never the
/// control thread's, which a reload keeps busy for seconds): a subscriber (`AUTH` if
/// configured, `PSUBSCRIBE <prefix>*`, then pushes) and a publisher (pipelined `PUBLISH`,
/// replies counted and discarded). Not host/outbound's pools: those belong to a plugin
/// version and close when it retires, while the bridge outlives every reload.
///
/// A message published here goes to Redis as `"plg1"`, this process's 16-byte instance id,
/// a type byte and the payload, on channel `<prefix><topic>`. A pmessage carrying our own
/// id is dropped (it was delivered locally when published); any other is delivered to this
/// process's subscribers only (topic_hub::deliver), never sent back to Redis. Delivery is
/// at most once: while Redis is unreachable, outgoing messages wait (up to max_pending) and
/// incoming ones are lost. Local delivery never waits for Redis.
class topic_bridge {
  public:
    using instance_id = std::array<std::uint8_t, 16>;
    /// Bytes in front of the payload: magic, instance id, type.
    static constexpr std::size_t header_bytes = 4 + 16 + 1;

    /// `loop`: the serving thread's event loop the connections live on; `stats`: where it
    /// counts (a traffic ledger record), outliving the bridge's connections.
    /// `max_message_bytes`: topics.max_message_bytes; a larger message from Redis is
    /// dropped as malformed.
    topic_bridge(const redis_settings& settings, std::size_t max_message_bytes, topic_hub& hub,
                 boost::asio::io_context& loop, instance_id id, topic_bridge_stats& stats);
    /// The connections' coroutines keep what they use alive; they end at stop(), or with
    /// the event loop.
    ~topic_bridge();
    topic_bridge(const topic_bridge&) = delete;
    topic_bridge& operator=(const topic_bridge&) = delete;

    /// Starts both connections (and their reconnecting). Once, on any thread.
    void start();
    /// Queues `m` for Redis. Any thread, never waits: one lock of a deque, and one post to
    /// the bridge's loop only when the queue was empty. Past max_pending the message is
    /// dropped and counted.
    void send(message_ref m);
    /// Closes both connections; later send()s do nothing. Any thread, once.
    void stop();

    /// A random instance id (getrandom): each process start, each worker, has its own.
    static instance_id random_id();
    /// The value published for `m` (the tag, then the payload), appended to `out`.
    static void append_value(std::string& out, const instance_id& id, const topic_message& m);
    /// A pmessage's value read back: ours (our id), foreign (and then its type and
    /// payload), or malformed (not a value append_value wrote, or above `max_bytes`).
    struct decoded {
        enum class kind : std::uint8_t { ours, foreign, malformed };
        kind from = kind::malformed;
        message_type type = message_type::text;
        std::string_view payload;
    };
    static decoded decode_value(std::string_view value, const instance_id& id,
                                std::size_t max_bytes) noexcept;

  private:
    class link;
    std::shared_ptr<link> link_;
};

}  // namespace plugd
