// traffic_stats: what a shard counts for the admin endpoint's /metrics.
//
// Plain integers, written and read only by the shard's own thread: a scrape asks each
// shard for a copy (posted to its event loop) and sums them. So the request path pays a
// few increments on memory no other thread writes: no lock, no atomic, no shared line.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "host/topic_bridge_stats.hpp"

namespace plugd {

/// Why a request did not end with the handler's own reply.
enum class request_error : std::uint8_t {
    exception,      ///< the handler threw (500 / "ERR internal error")
    timeout,        ///< request_timeout_ms cancelled the handler (504 / "ERR timeout")
    busy,           ///< the offload queue was full (503 / "ERR busy")
    drain_timeout,  ///< reload_drain_timeout_ms cancelled it on a replaced version (503 /
                    ///< "ERR reload drain timeout")
    write_timeout,  ///< the client did not read the reply within write_timeout_ms
    count
};

/// The name /metrics gives `e` (its `kind` label).
const char* to_string(request_error e) noexcept;

/// Upper bounds of the request latency histogram's buckets, in microseconds (the last,
/// +Inf, is implicit): from 100 µs, where a plain keep-alive request lands, to 10 s.
inline constexpr std::array<std::uint32_t, 14> latency_bounds_us{
    100,   250,   500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 1000000, 2500000, 10000000};

/// Requests of one listener (and route) answered by one plugin instance, on one shard.
struct request_stats {
    std::uint64_t requests = 0;
    std::array<std::uint64_t, static_cast<std::size_t>(request_error::count)> errors{};
    std::array<std::uint64_t, latency_bounds_us.size() + 1> latency{};  ///< not cumulative
    std::uint64_t latency_sum_us = 0;

    void record(std::chrono::steady_clock::duration took) noexcept {
        const auto us = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(took).count());
        std::size_t bucket = 0;
        while (bucket < latency_bounds_us.size() && us > latency_bounds_us[bucket]) ++bucket;
        ++requests;
        ++latency[bucket];
        latency_sum_us += us;
    }
    request_stats& operator+=(const request_stats& o) noexcept;
};

/// The canary judge's latency histogram: log-linear, 16 buckets for each power of two of
/// microseconds (each about 6% wide), so p99s of 1.9 ms and 2.0 ms are told apart, up to
/// 2^32 µs (71 minutes).
namespace canary_latency {
inline constexpr std::size_t sub_buckets = 16;
inline constexpr std::size_t buckets = sub_buckets + (32 - 4) * sub_buckets;

inline std::size_t bucket_of(std::uint64_t us) noexcept {
    if (us >= (std::uint64_t{1} << 32)) us = (std::uint64_t{1} << 32) - 1;
    if (us < sub_buckets) return static_cast<std::size_t>(us);
    const unsigned octave = static_cast<unsigned>(std::bit_width(us)) - 1;  // 4..31
    return sub_buckets + (octave - 4) * sub_buckets + ((us >> (octave - 4)) & (sub_buckets - 1));
}
/// The smallest value of bucket `i`, and the first of the next one.
inline std::uint64_t lower_bound_of(std::size_t i) noexcept {
    if (i < sub_buckets) return i;
    const std::size_t octave = (i - sub_buckets) / sub_buckets + 4;
    return (sub_buckets + (i - sub_buckets) % sub_buckets) << (octave - 4);
}
inline std::uint64_t upper_bound_of(std::size_t i) noexcept {
    return i + 1 < buckets ? lower_bound_of(i + 1) : std::uint64_t{1} << 32;
}
}  // namespace canary_latency

/// Requests of each side on each serving thread whose handler time is not kept: a
/// version's first calls run cold (lazy symbol binding, caches, first page faults), which
/// is not its speed, and would otherwise be a small canary's p99.
inline constexpr std::uint64_t canary_warmup_requests = 10;

/// One side of a canary (the canary's generation, or the one serving the rest) for one
/// plugin instance the canary changed, on one shard: what reload/canary_judge compares.
/// A shard reuses its records from one canary to the next: `canary` says which one they
/// count for (0 while they are reset), and a reader ignores records of another.
struct canary_stats {
    std::uint64_t canary = 0;      ///< the canary's generation
    std::uint64_t generation = 0;  ///< this side's generation
    std::uint64_t requests = 0;    ///< requests (and sessions) whose chain held the instance
    /// Of those: the chain threw, ran past request_timeout_ms, or answered 5xx itself.
    std::uint64_t errors = 0;
    /// Requests' handler times (sessions and raw connections have none; nor the first
    /// canary_warmup_requests).
    std::array<std::uint64_t, canary_latency::buckets> latency{};

    void record(bool error) noexcept {
        ++requests;
        if (error) ++errors;
    }
    void record(std::chrono::steady_clock::duration took, bool error) noexcept {
        record(error);
        if (requests <= canary_warmup_requests) return;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
        ++latency[canary_latency::bucket_of(us < 0 ? 0 : static_cast<std::uint64_t>(us))];
    }
    canary_stats& operator+=(const canary_stats& o) noexcept;
};

/// Connections and bytes of one listener, on one shard.
struct listener_stats {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;  ///< closed at once: at max_connections with none idle
    std::uint64_t bad_requests =
        0;  ///< malformed or too large: 400, 413, 431, "ERR request too large"
    std::uint64_t slow_requests = 0;       ///< not received within request_timeout_ms: 408
    std::uint64_t idle_timeouts = 0;       ///< closed after idle_timeout_ms without a request
    std::uint64_t not_found = 0;           ///< routed listeners: no route matched (404)
    std::uint64_t method_not_allowed = 0;  ///< routed listeners: only the method did not (405)
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    // TLS listeners: handshakes by outcome.
    std::uint64_t tls_full = 0;
    std::uint64_t tls_resumed = 0;
    std::uint64_t tls_failed = 0;  ///< failed, timed out, or plaintext sent to the port
    // Topics: messages delivered to this listener's subscribers (returned by next()), and
    // subscribers that fell more than max_queued_messages behind, by what was done.
    std::uint64_t topic_deliveries = 0;
    std::uint64_t slow_subscribers_closed = 0;
    std::uint64_t slow_subscribers_unsubscribed = 0;
    // WebSocket sessions (http listeners): upgrades answered 101, sessions ended (open ones
    // are the difference), messages each way, and endings by close code (websocket_close_codes).
    std::uint64_t websocket_upgrades = 0;
    std::uint64_t websocket_ended = 0;
    std::uint64_t websocket_messages_in = 0;
    std::uint64_t websocket_messages_out = 0;
    std::uint64_t websocket_closes[8] = {};
    listener_stats& operator+=(const listener_stats& o) noexcept;
};

/// The close codes /metrics counts WebSocket endings by (listener_stats::websocket_closes);
/// the last slot, "other", takes the rest (1003, 1006 for a client that vanished, 3000-4999).
inline constexpr std::uint16_t websocket_close_codes[8] = {1000, 1001, 1002, 1007,
                                                           1008, 1009, 1011, 0};
inline std::size_t websocket_close_slot(std::uint16_t code) noexcept {
    for (std::size_t i = 0; i + 1 < 8; ++i)
        if (websocket_close_codes[i] == code) return i;
    return 7;
}

/// Topic messages published on one serving thread (on its own thread, plain increments), or
/// on all the other threads (one record: atomic increments). A record of its own holds the
/// Redis bridge's counters (`redis`, atomic).
struct topic_stats {
    std::uint64_t publishes = 0;
    topic_bridge_stats redis;
};

/// One shard's copy of its counters and gauges, taken on its thread.
struct shard_snapshot {
    struct listener_part {
        std::string name;
        listener_stats stats;
        std::uint64_t open_connections = 0;
    };
    struct request_part {
        std::string listener, route, plugin;  ///< route: empty without routes
        request_stats stats;
        /// While a canary runs: the generation of the side the requests went to; else empty.
        std::string generation;
    };
    struct canary_part {
        std::string instance;
        canary_stats stats;
    };
    struct version_part {
        std::string plugin;
        std::uint64_t generation = 0;
        std::uint64_t in_flight = 0;
        bool retired = false;
    };
    std::vector<listener_part> listeners;
    std::vector<request_part> requests;
    std::vector<version_part> versions;
    std::vector<canary_part> canary;  ///< every canary's records, by instance and side
    std::uint64_t topic_publishes = 0;
    topic_bridge_stats redis;  ///< the Redis bridge's, where it counts
};

}  // namespace plugd
