// traffic_ledger and worker_gauges: what a worker counts is read whole by its master, also
// after the worker is gone, and a slot's next worker starts from zero.
#include <doctest/doctest.h>

#include <unistd.h>

#include "admin/worker_gauges.hpp"
#include "serving/traffic_ledger.hpp"

using namespace plugd;

namespace {

// The parts of `s` for listener `name`, summed.
listener_stats listener_total(const shard_snapshot& s, const std::string& name) {
    listener_stats total;
    for (const auto& l : s.listeners) {
        if (l.name == name) total += l.stats;
    }
    return total;
}

}  // namespace

TEST_CASE("traffic ledger: topic counters, each shard's and the other threads', reach the master") {
    const int fd = traffic_ledger::create_file();
    traffic_ledger worker{fd};
    traffic_ledger master{fd};
    topic_stats* shard0 = worker.topics(0);
    topic_stats* shard1 = worker.topics(1);
    topic_stats* others = worker.topics(2);
    listener_stats* main = worker.listener(0, "main");
    REQUIRE(shard0);
    REQUIRE(shard1);
    REQUIRE(others);
    REQUIRE(main);
    shard0->publishes = 3;
    shard1->publishes = 4;
    others->publishes = 5;
    main->topic_deliveries = 70;
    main->slow_subscribers_closed = 1;
    main->slow_subscribers_unsubscribed = 2;
    shard_snapshot seen;
    master.add_counters(seen);
    CHECK(seen.topic_publishes == 12);
    CHECK(listener_total(seen, "main").topic_deliveries == 70);
    CHECK(listener_total(seen, "main").slow_subscribers_closed == 1);
    CHECK(listener_total(seen, "main").slow_subscribers_unsubscribed == 2);
    ::close(fd);
}

TEST_CASE("traffic ledger: a second mapping of the file reads every shard's counters") {
    const int fd = traffic_ledger::create_file();
    traffic_ledger worker{fd};
    traffic_ledger master{fd};

    listener_stats* shard0 = worker.listener(0, "main");
    listener_stats* shard1 = worker.listener(1, "main");
    request_stats* requests = worker.requests(0, "main", "", "greeting");
    request_stats* routed = worker.requests(1, "main", "quotes", "quote_server");
    REQUIRE(shard0);
    REQUIRE(routed);
    routed->record(std::chrono::microseconds{50});
    REQUIRE(shard1);
    REQUIRE(requests);
    shard0->accepted = 3;
    shard1->accepted = 4;
    shard1->bytes_out = 100;
    for (int i = 0; i < 5; ++i) requests->record(std::chrono::microseconds{300});
    requests->errors[static_cast<std::size_t>(request_error::timeout)] = 1;

    shard_snapshot seen;
    master.add_counters(seen);
    CHECK(listener_total(seen, "main").accepted == 7);
    CHECK(listener_total(seen, "main").bytes_out == 100);
    REQUIRE(seen.requests.size() == 2);
    CHECK(seen.requests[0].listener == "main");
    CHECK(seen.requests[0].route.empty());
    CHECK(seen.requests[0].plugin == "greeting");
    CHECK(seen.requests[1].route == "quotes");
    CHECK(seen.requests[1].plugin == "quote_server");
    CHECK(seen.requests[1].stats.requests == 1);
    CHECK(seen.requests[0].stats.requests == 5);
    CHECK(seen.requests[0].stats.latency[2] == 5);  // the 500 µs bucket
    CHECK(seen.requests[0].stats.errors[static_cast<std::size_t>(request_error::timeout)] == 1);

    // The slot's next worker: nothing of the last one is left.
    master.clear();
    shard_snapshot after;
    master.add_counters(after);
    CHECK(after.listeners.empty());
    CHECK(after.requests.empty());
    CHECK(master.gauges().empty());
    ::close(fd);
}

TEST_CASE("traffic ledger: gauges go through whole, and back from JSON") {
    const int fd = traffic_ledger::create_file();
    traffic_ledger worker{fd};
    traffic_ledger master{fd};
    CHECK(master.gauges().empty());
    CHECK_FALSE(parse_gauges(master.gauges()));

    worker_gauges g;
    g.pid = 42;
    g.generation = 3;
    g.state = "draining";
    g.open_connections = {{"main", 2}, {"web", 5}};
    g.in_flight = {{"greeting", 3, 4, false}, {"greeting", 2, 1, true}};
    g.serving = {{"greeting", 3, "/p/greeting.so", 0xabc, "sdk=1.3", 1700000000000}};
    g.stalls = 7;
    g.stalled_threads = 1;
    worker.publish_gauges(to_document(g));

    const auto back = parse_gauges(master.gauges());
    REQUIRE(back);
    CHECK(back->pid == 42);
    CHECK(back->generation == 3);
    CHECK(back->state == "draining");
    CHECK(back->all_open_connections() == 7);
    CHECK(back->all_in_flight() == 5);
    REQUIRE(back->serving.size() == 1);
    CHECK(back->serving[0].content_hash == 0xabc);
    CHECK(back->stalls == 7);
    CHECK(back->stalled_threads == 1);
    CHECK_FALSE(parse_gauges("{ \"pid\": 1 }"));  // not one a worker wrote
    ::close(fd);
}

TEST_CASE("traffic ledger: a full region still counts, for this process only") {
    traffic_ledger ledger;  // private memory, as a single plugd's
    const std::string long_name(2000, 'x');
    std::vector<request_stats*> all;
    for (int i = 0; i < 1000; ++i) all.push_back(ledger.requests(0, long_name, "r", "p"));
    for (auto* r : all) {
        REQUIRE(r);
        r->requests = 1;  // every one writable, shared or not
    }
    shard_snapshot seen;
    ledger.add_counters(seen);
    CHECK(seen.requests.size() > 100);  // what fit in the region
    CHECK(seen.requests.size() < 1000);
}

TEST_CASE("master readiness: a worker slot has a grace period, generations must agree") {
    control_facts facts;
    facts.generation = 2;
    const std::int64_t now = 1'000'000;
    worker_gauges serving_2;
    serving_2.generation = 2;
    auto report = [&](unsigned index, long pid, std::int64_t started, std::int64_t down_since,
                      std::optional<worker_gauges> g) {
        if (g) g->pid = pid;
        return worker_report{{index, pid, started, down_since, 0}, g};
    };
    CHECK_FALSE(why_not_ready(
        facts, {report(0, 10, now - 9000, 0, serving_2), report(1, 11, now - 9000, 0, serving_2)},
        now));
    // A worker just replaced, not reported yet: still ready; after the grace, not.
    CHECK_FALSE(why_not_ready(
        facts, {report(0, 10, now - 9000, 0, serving_2), report(1, 12, now - 100, 0, {})}, now));
    CHECK(why_not_ready(facts,
                        {report(0, 10, now - 9000, 0, serving_2), report(1, 12, now - 6000, 0, {})},
                        now)
              ->find("worker 1") != std::string::npos);
    CHECK(why_not_ready(facts, {report(0, 0, now - 9000, now - 100, {})}, now) ==
          "no worker serves yet");
    worker_gauges serving_1 = serving_2;
    serving_1.generation = 1;
    const std::vector<worker_report> mixed{report(0, 10, now - 9000, 0, serving_2),
                                           report(1, 11, now - 9000, 0, serving_1)};
    CHECK(why_not_ready(facts, mixed, now)->find("generation 1") != std::string::npos);
    facts.reloading = true;  // workers move one by one during a reload
    CHECK_FALSE(why_not_ready(facts, mixed, now));
}
