// traffic_ledger: where a process's shards keep their /metrics counters, in memory another
// process can read.
//
// A single plugd keeps it in private memory. A supervised worker keeps it in a memory file
// its master created and handed down: the master reads every worker's counters there, also
// after the worker died (a crash at any instant loses none of what it counted), and
// answers /metrics and /status for all of them, while every worker is busy or being
// replaced.
//
// Each counter has one writer, the shard that owns its record: the request path pays the
// same plain increments as before, on memory no other thread writes. A record is appended
// (one atomic add on the ledger's fill mark) only when a shard first counts for a listener,
// or for a listener with a new plugin instance: at start and at reloads.
//
// The worker also publishes its gauges (open connections, requests in flight, versions,
// stalls) as a small document every few hundred milliseconds (publish_gauges): they need
// no exactness across a crash, so the request path writes nothing more for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "serving/traffic_stats.hpp"

namespace plugd {

struct ledger_header;
struct ledger_record;

class traffic_ledger {
  public:
    /// In this process's private memory (a single plugd).
    traffic_ledger();
    /// In the memory file `fd` (shared between a master and one worker), which the caller
    /// keeps open; created by create_file().
    explicit traffic_ledger(int fd);
    ~traffic_ledger();
    traffic_ledger(const traffic_ledger&) = delete;
    traffic_ledger& operator=(const traffic_ledger&) = delete;

    /// A new, empty memory file for one worker's ledger (close-on-exec; the master hands it
    /// down explicitly). Throws std::system_error.
    static int create_file();

    /// Shard `shard`'s counters of listener `name`: a new record each call (the shard
    /// keeps the pointer for the process's life). Called on the shard's thread.
    listener_stats* listener(unsigned shard, std::string_view name);
    /// Shard `shard`'s counters of `listener`'s route `route` (empty: a listener without
    /// routes) answered by plugin instance `plugin`; while a canary runs, of one side of it
    /// (`generation`: the side's generation; empty otherwise).
    request_stats* requests(unsigned shard, std::string_view listener, std::string_view route,
                            std::string_view plugin, std::string_view generation = {});
    /// Shard `shard`'s figures of one side of a canary for plugin instance `instance`: the
    /// shard reuses them from one canary to the next (see canary_stats).
    canary_stats* canary(unsigned shard, std::string_view instance);
    /// Shard `shard`'s topic counters; `shard` = the number of shards: the counters of
    /// every other thread, which write them atomically.
    topic_stats* topics(unsigned shard);

    /// Appends every record's counters to `into` (one part per record: the report sums
    /// parts with the same names). Safe while the writer counts (each value is read
    /// whole); exact once the writer has exited.
    void add_counters(shard_snapshot& into) const;

    /// Replaces the published gauges document (the writer's control thread only).
    void publish_gauges(std::string_view document);
    /// The last document published, or "" (none yet, or a writer kept rewriting it).
    std::string gauges() const;

    /// Forgets every record and the gauges: the slot's next worker starts from zero (the
    /// master has added this one's counters to its totals). Only while no process writes.
    void clear();

  private:
    ledger_record* append(unsigned shard, std::string_view listener, std::string_view route,
                          std::string_view plugin, std::string_view generation,
                          std::size_t stats_bytes);
    ledger_header& head() const noexcept;

    unsigned char* base_ = nullptr;
    int fd_ = -1;
    // Where counting goes when the region is full: still counted for this process's own
    // snapshot, invisible to a master (one warning says so).
    std::deque<listener_stats> overflow_listeners_;
    std::deque<request_stats> overflow_requests_;
    std::deque<canary_stats> overflow_canary_;
    std::deque<topic_stats> overflow_topics_;
};

}  // namespace plugd
