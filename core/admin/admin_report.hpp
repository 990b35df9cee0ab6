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

/// What a report says of one loaded plugin version: plain values, so a report holds no
/// version (and never keeps one loaded, or unloads one, on the thread that formats it).
struct version_facts {
    std::string name;  ///< the plugin instance
    std::uint64_t generation = 0;
    std::string file;
    std::uint64_t content_hash = 0;
    std::string abi;
    std::int64_t loaded_at_unix_ms = 0;

    static version_facts of(const plugin_version& v);
};

/// What the control thread knows, published to the admin endpoint after each change
/// (start, reload, a drained version unloaded, drain, stop): the admin thread answers from
/// the latest copy without asking the control thread, which may be busy with a reload.
struct control_facts {
    std::uint64_t generation = 0;
    std::int64_t started_unix_ms = 0;
    std::string state = "serving";  ///< "serving", "draining" or "stopping"
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    std::vector<listener_spec> listeners;  ///< with the ports they are bound to
    std::vector<version_facts> serving;
    std::vector<version_facts> draining;
};

/// Everything a report needs: the control thread's latest facts and each shard's counters.
struct server_report {
    std::shared_ptr<const control_facts> facts;
    std::int64_t now_unix_ms = 0;
    std::uint64_t stalls = 0;
    std::uint64_t starvations = 0;  ///< lateness that was waiting for a CPU, not a stall
    std::vector<shard_snapshot> shards;
};

/// GET /status: one JSON object (see docs/operations.md for its fields).
std::string status_json(const server_report& r);

/// GET /metrics: Prometheus text exposition format 0.0.4 (metric names: docs/operations.md).
std::string metrics_text(const server_report& r);

}  // namespace plugd
