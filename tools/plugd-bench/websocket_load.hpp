// websocket_load: plugd-bench's --websocket mode, room fan-out: one publisher and N
// subscribers in one room of a chat server (every message a client sends goes to the room's
// other clients); delivered messages per second, delivery latency, and what an idle session
// costs the server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "latency_histogram.hpp"

namespace plugd::bench {

struct websocket_options {
    std::string host;
    unsigned short port = 0;
    std::string path;          ///< the room's path, e.g. /room/bench
    unsigned subscribers = 0;  ///< connections that only receive
    unsigned in_flight = 1;    ///< messages sent but not yet seen by every subscriber, at most
    std::size_t size = 32;     ///< each message's bytes (at least its sequence and timestamp)
    unsigned threads = 1;      ///< client threads; the subscribers are spread over them
    double duration = 5;
    double warmup = 1;
    double timeout =
        10;  ///< no progress (upgrades, or a message reaching everyone) this long fails
    int server_pid = 0;
};

struct websocket_result {
    std::uint64_t delivered = 0;  ///< messages received in the measured window, all subscribers
    std::uint64_t sent = 0;       ///< messages the publisher sent in the measured window
    std::uint64_t errors = 0;     ///< connections that failed, stalls, a server that exited
    std::uint64_t mismatches =
        0;                      ///< messages out of order, altered, or sent back to the publisher
    latency_histogram latency;  ///< from the publisher's send to a subscriber's read, in us
    double seconds = 0;         ///< the measured window
    double setup_seconds = 0;   ///< connecting and upgrading every subscriber
    std::optional<double> server_cpu_us_per_message;  ///< per delivered message
    std::optional<std::uint64_t> server_rss_kib;      ///< at the end of the measured window
    /// The server's resident memory grown between before connecting and once every subscriber
    /// was upgraded (and the server had gone quiet), per subscriber: an idle session.
    std::optional<std::uint64_t> server_rss_per_session_bytes;
    std::string first_error;
    std::string first_mismatch;
};

/// Runs the load described by `o` on the calling thread (and o.threads - 1 more), and returns
/// what it measured. Network failures are counted in the result, not thrown.
websocket_result run_websocket_load(const websocket_options& o);

}  // namespace plugd::bench
