// worker_board: the master's view of what its workers counted and how busy they are, read
// from each worker's traffic_ledger, for the admin endpoint the master serves.
//
// A worker slot keeps one ledger file for its whole life: the master hands it to each
// worker it starts there. When a worker exits (or is killed at any instant), what it
// counted is added to the slot's totals and the file is emptied for the next one, so a
// counter never goes back and nothing a dead worker counted is lost.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "admin/worker_gauges.hpp"
#include "serving/traffic_ledger.hpp"

namespace plugd {

class worker_board {
  public:
    explicit worker_board(unsigned workers);
    ~worker_board();
    worker_board(const worker_board&) = delete;
    worker_board& operator=(const worker_board&) = delete;

    /// The ledger file a worker started in `slot` counts in (the master's descriptor: the
    /// spawn hands it down).
    int ledger_file(unsigned slot) const { return files_.at(slot); }
    /// The slot's worker has exited (reaped): keeps what it counted, empties its ledger.
    /// Master thread.
    void worker_exited(unsigned slot);
    /// A worker died of a crash in canary `canary`'s version of `instance`: one request of
    /// the canary's side that failed (its worker could not count it). Master thread.
    void count_canary_crash(const std::string& instance, std::uint64_t canary);

    // Called on the admin thread; each reads every ledger under the board's lock (never on
    // a request path: the master serves no requests).
    /// One part per slot (its counters, its open connections and requests in flight) and
    /// one for what exited workers counted.
    std::vector<shard_snapshot> snapshots() const;
    /// What the worker in `slot` published last (nothing before its first publication).
    std::optional<worker_gauges> gauges(unsigned slot) const;
    std::uint64_t stalls() const;
    std::uint64_t starvations() const;
    std::size_t stalled_threads() const;

  private:
    /// `field` of every live worker's last gauges, plus `exited` (what exited ones had).
    template <class T>
    T sum_of_gauges(T worker_gauges::*field, T exited) const;

    mutable std::mutex mutex_;
    std::vector<int> files_;
    std::vector<std::unique_ptr<traffic_ledger>> ledgers_;
    // What exited workers counted, summed.
    std::map<std::string, listener_stats> exited_listeners_;
    std::map<std::tuple<std::string, std::string, std::string, std::string>, request_stats>
        exited_requests_;
    /// By (instance, canary, side generation): what exited workers counted of canaries,
    /// and their crashes in a canary's version.
    std::map<std::tuple<std::string, std::uint64_t, std::uint64_t>, canary_stats> exited_canary_;
    std::uint64_t exited_topic_publishes_ = 0;
    topic_bridge_stats exited_redis_;  ///< exited workers' bridge counters
    std::uint64_t exited_stalls_ = 0;
    std::uint64_t exited_starvations_ = 0;
};

}  // namespace plugd
