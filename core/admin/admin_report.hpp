// admin_report: what /status and /metrics say, formatted from one consistent gathering.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "serving/traffic_stats.hpp"

namespace plugd {

class plugin_version;

/// Everything a report needs, gathered on the control thread (and from each shard).
struct server_report {
    std::uint64_t generation = 0;
    std::int64_t started_unix_ms = 0;
    std::int64_t now_unix_ms = 0;
    std::string state;  ///< "serving", "draining" or "stopping"
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    std::uint64_t stalls = 0;
    std::uint64_t starvations = 0;  ///< lateness that was waiting for a CPU, not a stall
    std::vector<listener_spec> listeners;  ///< with the ports they are bound to
    std::vector<std::shared_ptr<plugin_version>> serving;
    std::vector<std::shared_ptr<plugin_version>> draining;
    std::vector<shard_snapshot> shards;
};

/// GET /status: one JSON object (see docs/operations.md for its fields).
std::string status_json(const server_report& r);

/// GET /metrics: Prometheus text exposition format 0.0.4 (metric names: docs/operations.md).
std::string metrics_text(const server_report& r);

}  // namespace plugd
