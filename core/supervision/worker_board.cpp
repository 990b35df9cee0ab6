// worker_board: ledgers by slot, and the totals of the workers that exited.
#include "supervision/worker_board.hpp"

#include <unistd.h>

namespace plugd {

worker_board::worker_board(unsigned workers) {
    for (unsigned i = 0; i < workers; ++i) {
        files_.push_back(traffic_ledger::create_file());
        ledgers_.push_back(std::make_unique<traffic_ledger>(files_.back()));
    }
}

worker_board::~worker_board() {
    ledgers_.clear();
    for (const int fd : files_) ::close(fd);
}

void worker_board::worker_exited(unsigned slot) {
    traffic_ledger& ledger = *ledgers_.at(slot);
    shard_snapshot counted;
    ledger.add_counters(counted);
    const auto last = parse_gauges(ledger.gauges());
    std::lock_guard lock{mutex_};
    for (const auto& l : counted.listeners) exited_listeners_[l.name] += l.stats;
    for (const auto& r : counted.requests)
        exited_requests_[{r.listener, r.route, r.plugin, r.generation}] += r.stats;
    for (const auto& c : counted.canary) {
        canary_stats& kept = exited_canary_[{c.instance, c.stats.canary, c.stats.generation}];
        kept.canary = c.stats.canary;
        kept.generation = c.stats.generation;
        kept += c.stats;
    }
    exited_topic_publishes_ += counted.topic_publishes;
    exited_redis_.add(counted.redis, true);  // its bridge is gone: its gauges with it
    if (last) {
        exited_stalls_ += last->stalls;
        exited_starvations_ += last->starvations;
    }
    ledger.clear();
}

void worker_board::count_canary_crash(const std::string& instance, std::uint64_t canary) {
    std::lock_guard lock{mutex_};
    canary_stats& kept = exited_canary_[{instance, canary, canary}];
    kept.canary = kept.generation = canary;
    kept.record(true);
}

std::vector<shard_snapshot> worker_board::snapshots() const {
    std::lock_guard lock{mutex_};
    std::vector<shard_snapshot> all;
    for (const auto& ledger : ledgers_) {
        shard_snapshot& s = all.emplace_back();
        ledger->add_counters(s);
        if (const auto g = parse_gauges(ledger->gauges())) {
            for (const auto& [name, open] : g->open_connections)
                s.listeners.push_back({name, {}, open});
            s.versions = g->in_flight;
        }
    }
    shard_snapshot& exited = all.emplace_back();
    for (const auto& [name, stats] : exited_listeners_)
        exited.listeners.push_back({name, stats, 0});
    for (const auto& [key, stats] : exited_requests_)
        exited.requests.push_back(
            {std::get<0>(key), std::get<1>(key), std::get<2>(key), stats, std::get<3>(key)});
    for (const auto& [key, stats] : exited_canary_)
        exited.canary.push_back({std::get<0>(key), stats});
    exited.topic_publishes = exited_topic_publishes_;
    exited.redis = exited_redis_;
    return all;
}

std::optional<worker_gauges> worker_board::gauges(unsigned slot) const {
    std::lock_guard lock{mutex_};
    return parse_gauges(ledgers_.at(slot)->gauges());
}

std::uint64_t worker_board::stalls() const {
    return sum_of_gauges(&worker_gauges::stalls, exited_stalls_);
}

std::uint64_t worker_board::starvations() const {
    return sum_of_gauges(&worker_gauges::starvations, exited_starvations_);
}

std::size_t worker_board::stalled_threads() const {
    return sum_of_gauges(&worker_gauges::stalled_threads, std::size_t{0});
}

template <class T>
T worker_board::sum_of_gauges(T worker_gauges::*field, T exited) const {
    std::lock_guard lock{mutex_};
    T n = exited;
    for (const auto& l : ledgers_) {
        if (const auto g = parse_gauges(l->gauges())) n += (*g).*field;
    }
    return n;
}

}  // namespace plugd
