// topic_bridge_stats: what the Redis topic bridge counts for /metrics.
#pragma once

#include <cstdint>

namespace plugd {

/// Written through std::atomic_ref (the bridge counts on serving thread 0, drops in send()
/// on any thread; the admin thread or a supervising master reads), so it can live in a
/// worker's traffic ledger. Plain integers, so it keeps the ledger's fixed layout.
struct topic_bridge_stats {
    std::uint64_t bridges = 0;       ///< 1 where a bridge counts (a sum: the processes with one)
    std::uint64_t up = 0;            ///< 1 while both of its connections to Redis are ready
    std::uint64_t messages_out = 0;  ///< PUBLISHes written to Redis
    std::uint64_t messages_in = 0;   ///< other processes' messages delivered here
    std::uint64_t dropped_pending_full = 0;  ///< not sent: max_pending were waiting already
    std::uint64_t dropped_malformed = 0;     ///< received on our channels, not ours to read
    std::uint64_t reconnects = 0;            ///< connection attempts after a failure

    /// A copy read while the bridge counts, each value whole (any thread).
    topic_bridge_stats snapshot() const noexcept {
        const auto load = [](const std::uint64_t& v) {
            return __atomic_load_n(&v, __ATOMIC_RELAXED);
        };
        return {load(bridges),
                load(up),
                load(messages_out),
                load(messages_in),
                load(dropped_pending_full),
                load(dropped_malformed),
                load(reconnects)};
    }

    /// Adds `o`'s counters (not its gauges, bridges and up) when `counters_only`.
    void add(const topic_bridge_stats& o, bool counters_only = false) noexcept {
        if (!counters_only) {
            bridges += o.bridges;
            up += o.up;
        }
        messages_out += o.messages_out;
        messages_in += o.messages_in;
        dropped_pending_full += o.dropped_pending_full;
        dropped_malformed += o.dropped_malformed;
        reconnects += o.reconnects;
    }
};

}  // namespace plugd
