// admin_report: what /status and /metrics say, formatted from one consistent gathering.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "admin/control_facts.hpp"
#include "admin/worker_gauges.hpp"
#include "serving/traffic_stats.hpp"

namespace plugd {

/// Everything a report needs: the control thread's latest facts and each shard's counters.
struct server_report {
    std::shared_ptr<const control_facts> facts;
    std::int64_t now_unix_ms = 0;
    std::uint64_t stalls = 0;
    std::uint64_t starvations = 0;       ///< lateness that was waiting for a CPU, not a stall
    std::vector<shard_snapshot> shards;  ///< with workers: one per worker, one for the exited
    std::vector<worker_report> workers;  ///< empty without supervised workers
};

/// GET /status: one JSON object (see docs/operations.md for its fields).
std::string status_json(const server_report& r);

/// GET /metrics: Prometheus text exposition format 0.0.4 (metric names: docs/operations.md).
std::string metrics_text(const server_report& r);

}  // namespace plugd
