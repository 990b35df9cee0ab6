// control_facts: what the control thread (or a supervising master) knows and publishes to
// the admin endpoint: generation, state, listeners, plugin versions.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "reload/canary_judge.hpp"
#include "tls/certificate_facts.hpp"

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

/// One supervised worker slot as its master knows it.
struct worker_slot {
    unsigned index = 0;
    long pid = 0;  ///< 0 while no worker runs in it
    std::int64_t started_unix_ms = 0;
    std::int64_t down_since_unix_ms = 0;  ///< while pid is 0: since when
    std::uint64_t restarts = 0;
};

/// A canary running, or the last one decided (until the next starts).
struct canary_facts {
    std::uint64_t generation = 0;
    std::uint64_t serving_generation = 0;  ///< the generation it runs (or ran) next to
    std::string state;                     ///< "running", "promoted" or "rolled_back"
    unsigned percent = 0;
    canary_settings settings;  ///< of the configuration it loaded
    std::int64_t started_unix_ms = 0;
    std::int64_t ended_unix_ms = 0;       ///< decided: when
    std::vector<std::string> judged;      ///< the instances it changed
    std::vector<version_facts> versions;  ///< their canary versions (while it runs)
    /// Decided: the figures at the verdict, and its line. While it runs, reports sum the
    /// shards' figures themselves.
    std::vector<canary_instance> figures;
    std::string outcome;

    /// The verdict: promoted or rolled back at `now_unix_ms`, with the figures it was
    /// decided on and its outcome line.
    void decided(bool promoted, std::vector<canary_instance> at_verdict, std::string line,
                 std::int64_t now_unix_ms) {
        state = promoted ? "promoted" : "rolled_back";
        ended_unix_ms = now_unix_ms;
        figures = std::move(at_verdict);
        outcome = std::move(line);
    }
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
    /// Each TLS listener's certificate, by listener name: the one serving (a supervising
    /// master: the one its configuration names, read when that configuration was loaded).
    std::map<std::string, certificate_facts> certificates;
    std::vector<version_facts> serving;
    std::vector<version_facts> draining;
    /// With supervised workers: the master's view of each worker slot.
    std::vector<worker_slot> workers;
    bool reloading = false;  ///< a master's combined reload runs (workers may differ)
    std::optional<canary_facts> canary;
};

}  // namespace plugd
