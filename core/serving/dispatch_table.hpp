// dispatch_table: where a shard sends a listener's requests, for one generation of the
// configuration: the listener's chain, or its routes and one chain per route.
//
// A request pins the table it started on, and every plugin version of its chain, by plain
// counters only its shard's thread touches: a reload that changes a filter and a handler
// together swaps the whole table between two events of the shard, so no request ever runs
// half of the old composition and half of the new one, and the pinned versions stay
// loaded until the request ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plugins/plugin_version.hpp"
#include "routing/handler_chain.hpp"
#include "routing/route_table.hpp"
#include "serving/traffic_stats.hpp"

namespace plugd {

/// A shard's handle on one plugin version. Requests count themselves in and out of
/// `in_flight` (a plain integer: only this shard's thread touches it). Once the version is
/// replaced (`retired`) and idle, the shard drops its `version` reference and tells the
/// control thread, which unloads the version when no shard holds it any more.
struct plugin_ref {
    std::shared_ptr<plugin_version> version;
    std::uint64_t in_flight = 0;
    bool retired = false;
};

/// `max_in_flight` of one plugin instance: how many requests run it now in this process.
/// The one counter of the request path that threads share, and only for an instance that
/// sets a cap (a shared count is the only exact one).
struct in_flight_cap {
    std::atomic<std::uint64_t>* running;  ///< the instance's, for the process's life
    std::uint64_t limit;
    std::string instance;
};

/// The process's counter of requests running instance `name` (never freed: a counter
/// outlives the versions that count in it).
std::atomic<std::uint64_t>& instance_in_flight(const std::string& name);

/// One chain of a listener on one shard: filters, then the plugin that answers.
struct chain_slot {
    std::vector<plugin_ref*> links;  ///< pinned for each request
    std::vector<plugd::handler*> handlers;
    handler_chain run;                    ///< over `handlers`
    std::vector<in_flight_cap> caps;      ///< of the links that set max_in_flight
    std::string route;                    ///< the route's label; empty without routes
    const std::string* plugin = nullptr;  ///< the final instance's name
    request_stats* requests = nullptr;    ///< where its requests count; null: not counted
    /// While a canary runs: this side's figures of each instance of the chain the canary
    /// changed, which the judge compares (reload/canary_judge); empty otherwise.
    std::vector<canary_stats*> judged;
    std::uint64_t judged_canary = 0;  ///< the canary they count for (a shard reuses them)
    /// The final instance serves WebSocket sessions (an upgrade request goes to it), and
    /// whether that is all it does (a plain request gets 426 from the core).
    bool sessions = false;
    bool sessions_only = false;
    plugin_version& answering() const noexcept { return *links.back()->version; }
    /// Whether `version` is one of the chain's.
    bool runs(const plugin_version* version) const noexcept {
        for (const plugin_ref* link : links)
            if (link->version.get() == version) return true;
        return false;
    }
    /// Counts a request (with its handler time) or a session (without) into `judged`.
    /// Records reset for a later canary since this table was made count nothing of it.
    void count_judged(bool error) const noexcept {
        for (canary_stats* s : judged)
            if (s->canary == judged_canary) s->record(error);
    }
    void count_judged(std::chrono::steady_clock::duration took, bool error) const noexcept {
        for (canary_stats* s : judged)
            if (s->canary == judged_canary) s->record(took, error);
    }
};

struct dispatch_table {
    std::vector<chain_slot> chains;  ///< one per route, or the listener's one
    route_table routes;
    bool routed = false;
    std::uint64_t in_flight = 0;  ///< requests pinning it (this shard's thread only)
    bool retired = false;         ///< replaced: deleted once in_flight is 0
};

}  // namespace plugd
