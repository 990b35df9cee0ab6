// worker_gauges: what a supervised worker tells its master besides its counters: what it
// serves and how busy it is now, as a small JSON document the master reads from the
// worker's traffic_ledger (see there) to answer /status, /metrics, /healthz and /livez.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/control_facts.hpp"
#include "serving/traffic_stats.hpp"

namespace plugd {

struct worker_gauges {
    long pid = 0;
    std::uint64_t generation = 0;
    std::string state;                                      ///< "serving", "draining" or "stopping"
    std::map<std::string, std::uint64_t> open_connections;  ///< by listener
    std::vector<shard_snapshot::version_part> in_flight;    ///< summed over its shards
    std::vector<version_facts> serving, draining;
    std::uint64_t stalls = 0;
    std::uint64_t starvations = 0;
    std::size_t stalled_threads = 0;

    /// Of a worker whose shards answered `shards` and whose control thread knows `facts`.
    static worker_gauges of(long pid, const control_facts& facts,
                            const std::vector<shard_snapshot>& shards);
    std::uint64_t all_open_connections() const noexcept;
    std::uint64_t all_in_flight() const noexcept;
};

/// One worker slot in a report: the master's facts and what its worker published.
struct worker_report {
    worker_slot slot;
    std::optional<worker_gauges> gauges;  ///< nothing before its worker's first publication

    /// A worker runs in the slot and has published that it serves a generation.
    bool serving() const noexcept {
        return slot.pid > 0 && gauges && gauges->pid == slot.pid && gauges->generation > 0;
    }
};

/// How long a worker slot may be without a serving worker (a crash's respawn, a start)
/// before the master's /healthz says the server is not ready.
inline constexpr std::int64_t worker_respawn_grace_ms = 5000;

/// Why a master's server is not ready (/healthz 503), or nothing: no worker serves; a slot
/// has been without a serving worker for longer than worker_respawn_grace_ms; or, outside
/// a reload, its workers serve different generations.
std::optional<std::string> why_not_ready(const control_facts& facts,
                                         const std::vector<worker_report>& workers,
                                         std::int64_t now_unix_ms);

std::string to_document(const worker_gauges& g);
/// Nothing when `document` is empty or not one to_document() wrote.
std::optional<worker_gauges> parse_gauges(std::string_view document);

}  // namespace plugd
