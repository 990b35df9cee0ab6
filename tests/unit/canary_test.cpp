// Canary reloads without a server: the latency histogram, the decision rule and its
// evidence, the outcome's words, and the shard-local split.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "reload/canary_judge.hpp"
#include "serving/canary_split.hpp"

using namespace plugd;
using namespace std::chrono_literals;

namespace {

// One side: `requests` of which `errors` failed, each timed at `us` microseconds (or none).
canary_side side(std::uint64_t generation, std::uint64_t requests, std::uint64_t errors,
                 std::uint64_t us = 0) {
    canary_side s;
    s.generation = generation;
    s.requests = requests;
    s.errors = errors;
    if (us > 0) s.latency[canary_latency::bucket_of(us)] = requests;
    return s;
}

std::vector<canary_instance> one(canary_side serving, canary_side canary) {
    return {{"p", serving, canary}};
}

canary_settings settings() {
    canary_settings s;
    s.min_requests = 100;
    s.min_duration = 1000ms;
    s.max_duration = 60000ms;
    return s;
}

}  // namespace

TEST_CASE("the canary histogram's buckets are about 6 percent wide and cover 1 us to 71 minutes") {
    for (std::uint64_t us : {0ull, 1ull, 15ull, 16ull, 17ull, 31ull, 32ull, 1000ull, 1999ull,
                             2000ull, 123456ull, (1ull << 32) - 1}) {
        const std::size_t b = canary_latency::bucket_of(us);
        CHECK(b < canary_latency::buckets);
        CHECK(canary_latency::lower_bound_of(b) <= us);
        CHECK(us < canary_latency::upper_bound_of(b));
        if (us >= 16) {
            const double width = static_cast<double>(canary_latency::upper_bound_of(b) -
                                                     canary_latency::lower_bound_of(b));
            CHECK(width / static_cast<double>(canary_latency::lower_bound_of(b)) <= 1.0 / 16);
        }
    }
    CHECK(canary_latency::bucket_of(1ull << 40) == canary_latency::buckets - 1);
    // 1.9 ms and 2.0 ms land in different buckets.
    CHECK(canary_latency::bucket_of(1900) != canary_latency::bucket_of(2000));
}

TEST_CASE("a side's p99 is the bucket 99 percent of its timed requests fall in") {
    canary_side s;
    for (int i = 0; i < 990; ++i) s.latency[canary_latency::bucket_of(2000)]++;
    for (int i = 0; i < 10; ++i) s.latency[canary_latency::bucket_of(50000)]++;
    s.requests = 1000;
    REQUIRE(s.p99_ms());
    CHECK(*s.p99_ms() == doctest::Approx(2.0).epsilon(0.05));
    s.latency[canary_latency::bucket_of(50000)]++;  // 1.1% above: the p99 moves up there
    s.requests = 1001;
    CHECK(*s.p99_ms() == doctest::Approx(50.0).epsilon(0.05));
    CHECK_FALSE(canary_side{}.p99_ms());
}

TEST_CASE("a canary failing 30 percent is rolled back as soon as the evidence is enough") {
    const auto s = settings();
    // Four errors are not enough evidence, whatever the rate.
    auto v = judge_canary(s, one(side(6, 100, 0), side(7, 4, 4)), 100ms);
    CHECK(v.what == canary_verdict::kind::undecided);
    v = judge_canary(s, one(side(6, 100, 0), side(7, 20, 6)), 100ms);
    CHECK(v.what == canary_verdict::kind::roll_back);
    CHECK(v.why == "errors 30.0% vs 0.0% (bounds 2.0x and 1.0%)");
    // Long before min_requests or min_duration_ms: failures are not awaited.
    CHECK(20 < s.min_requests);
}

TEST_CASE("the error bound is broken only above both the ratio and the rate") {
    auto s = settings();
    // 8% against 5%: below 2x the old side's rate, so within bounds although above 1%.
    auto v = judge_canary(s, one(side(6, 2000, 100, 1000), side(7, 1000, 80, 1000)), 2000ms);
    CHECK(v.what == canary_verdict::kind::promote);
    // 0.6% against 0.1%: six times the old side's, but below max_error_rate.
    v = judge_canary(s, one(side(6, 10000, 10, 1000), side(7, 1000, 6, 1000)), 2000ms);
    CHECK(v.what == canary_verdict::kind::promote);
    // 20% against 5%: above both.
    v = judge_canary(s, one(side(6, 2000, 100, 1000), side(7, 1000, 200, 1000)), 2000ms);
    CHECK(v.what == canary_verdict::kind::roll_back);
}

TEST_CASE("one unlucky error of a good version does not roll it back") {
    const auto s = settings();
    for (std::uint64_t n : {1, 2, 10, 50, 100}) {
        const auto v = judge_canary(s, one(side(6, 1000, 1, 1000), side(7, n, 1, 1000)), 100ms);
        CHECK(v.what == canary_verdict::kind::undecided);
    }
    CHECK(wilson_lower_bound(0, 100, 3) == 0);
    CHECK(wilson_lower_bound(30, 100, 3) == doctest::Approx(0.1838).epsilon(0.01));
}

TEST_CASE("a good canary is promoted once it has min_requests and min_duration_ms") {
    const auto s = settings();
    const auto good = one(side(6, 400, 0, 2000), side(7, 100, 0, 2000));
    CHECK(judge_canary(s, good, 999ms).what == canary_verdict::kind::undecided);
    CHECK(judge_canary(s, good, 1000ms).what == canary_verdict::kind::promote);
    const auto few = one(side(6, 400, 0, 2000), side(7, 99, 0, 2000));
    CHECK(judge_canary(s, few, 5000ms).what == canary_verdict::kind::undecided);
    // Sessions only (no handler times): the error rate alone decides.
    CHECK(judge_canary(s, one(side(6, 400, 0), side(7, 100, 0)), 1000ms).what ==
          canary_verdict::kind::promote);
}

TEST_CASE("a canary 3x slower is rolled back on its p99 once both sides have min_requests") {
    const auto s = settings();
    auto v = judge_canary(s, one(side(6, 400, 0, 2000), side(7, 99, 0, 6000)), 100ms);
    CHECK(v.what == canary_verdict::kind::undecided);
    v = judge_canary(s, one(side(6, 400, 0, 2000), side(7, 100, 0, 6000)), 100ms);
    CHECK(v.what == canary_verdict::kind::roll_back);
    CHECK(v.why.starts_with("p99 6.0 ms vs 2.0 ms (bound 1.5x), errors 0.0% vs 0.0%"));
    // Within the ratio: promoted.
    v = judge_canary(s, one(side(6, 400, 0, 2000), side(7, 100, 0, 2900)), 1000ms);
    CHECK(v.what == canary_verdict::kind::promote);
    // Microseconds apart: the scheduler's noise, not a regression.
    v = judge_canary(s, one(side(6, 400, 0, 4), side(7, 100, 0, 12)), 1000ms);
    CHECK(v.what == canary_verdict::kind::promote);
}

TEST_CASE("an undecided canary is rolled back at max_duration_ms") {
    const auto s = settings();
    const auto few = one(side(6, 400, 0, 2000), side(7, 10, 0, 2000));
    CHECK(judge_canary(s, few, 59999ms).what == canary_verdict::kind::undecided);
    const auto v = judge_canary(s, few, 60000ms);
    CHECK(v.what == canary_verdict::kind::roll_back);
    CHECK(v.why.starts_with("undecided after 60 s (max_duration_ms): errors 0.0% vs 0.0%"));
}

TEST_CASE("every changed instance must pass, and the outcome names each") {
    const auto s = settings();
    std::vector<canary_instance> two{{"a", side(6, 400, 0, 2000), side(7, 100, 0, 2000)},
                                     {"b", side(6, 400, 0, 2000), side(7, 40, 0, 2000)}};
    CHECK(judge_canary(s, two, 5000ms).what == canary_verdict::kind::undecided);
    two[1].canary = side(7, 40, 20, 2000);
    const auto v = judge_canary(s, two, 5000ms);
    CHECK(v.what == canary_verdict::kind::roll_back);
    CHECK(v.why.starts_with("b: errors 50.0% vs 0.0%"));
    CHECK(canary_figures_text(two).starts_with("a: errors 0.0% vs 0.0%, p99 2.0 ms vs 2.0 ms; b:"));
}

TEST_CASE("the outcome line reads as the operations guide shows it") {
    auto figures = one(side(6, 4000, 4, 2000), side(7, 1204, 1, 1900));
    CHECK(canary_outcome(7, "promoted", figures, 30400ms) ==
          "canary generation 7 promoted after 1,204 requests in 30 s: errors 0.08% vs 0.1%, "
          "p99 1.9 ms vs 2.0 ms");
    CHECK(canary_outcome(7, "rolled back", one(side(6, 900, 1), side(7, 212, 26)), 3100ms,
                         "errors 12.3% vs 0.1% (bounds 2.0x and 1.0%)") ==
          "canary generation 7 rolled back after 212 requests in 3.1 s: errors 12.3% vs 0.1% "
          "(bounds 2.0x and 1.0%)");
    CHECK(with_thousands(0) == "0");
    CHECK(with_thousands(999) == "999");
    CHECK(with_thousands(1000) == "1,000");
    CHECK(with_thousands(1234567) == "1,234,567");
}

TEST_CASE("figures are summed per side from every shard's records of that canary only") {
    std::vector<shard_snapshot> shards(2);
    for (auto& s : shards) {
        canary_stats serving, canary, older;
        serving.canary = canary.canary = 7;
        serving.generation = 6;
        canary.generation = 7;
        serving.requests = 10;
        canary.requests = 3;
        canary.errors = 1;
        older.canary = 5;  // an earlier canary's record, not reset on this shard yet
        older.generation = 5;
        older.requests = 1000;
        s.canary = {{"p", serving}, {"p", canary}, {"p", older}, {"q", canary}};
    }
    const auto f = canary_figures(shards, 7, {"p"});
    REQUIRE(f.size() == 1);
    CHECK(f[0].serving.generation == 6);
    CHECK(f[0].serving.requests == 20);
    CHECK(f[0].canary.generation == 7);
    CHECK(f[0].canary.requests == 6);
    CHECK(f[0].canary.errors == 2);
}

TEST_CASE("a canary split takes its share of requests, and a sticky one keeps a client's side") {
    canary_split split;
    split.percent = 20;
    int taken = 0;
    for (int i = 0; i < 100000; ++i) taken += split.takes("127.0.0.1:40000", nullptr);
    CHECK(taken == doctest::Approx(20000).epsilon(0.05));

    split.sticky = canary_sticky::peer;
    split.salt = 7;
    std::map<std::string, bool> side;
    int canaries = 0;
    for (int a = 1; a <= 200; ++a) {
        const std::string address = "10.0." + std::to_string(a / 250) + "." + std::to_string(a);
        const bool first = split.takes(address + ":1000", nullptr);
        for (int port = 1001; port < 1010; ++port)
            CHECK(split.takes(address + ":" + std::to_string(port), nullptr) == first);
        canaries += first;
    }
    CHECK(canaries == doctest::Approx(40).epsilon(0.5));
    CHECK(canary_split::address_of("[::1]:8080") == "[::1]");
    CHECK(canary_split::address_of("127.0.0.1:8080") == "127.0.0.1");

    // By header: the value decides; without it, the client's address.
    split.sticky = canary_sticky::header;
    split.header = "X-User";
    const std::string head_a = "GET / HTTP/1.1\r\nx-user: alice\r\n\r\n";
    const http_request_view alice{"GET", "/", "", head_a};
    const bool alice_side = split.takes("10.0.0.1:1", &alice);
    for (int a = 2; a < 50; ++a)
        CHECK(split.takes("10.0.0." + std::to_string(a) + ":1", &alice) == alice_side);
    const std::string head_none = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    const http_request_view anonymous{"GET", "/", "", head_none};
    split.sticky = canary_sticky::peer;
    const bool by_peer = split.takes("10.0.0.9:1", nullptr);
    split.sticky = canary_sticky::header;
    CHECK(split.takes("10.0.0.9:2", &anonymous) == by_peer);
}

TEST_CASE("the first requests of a side on a thread count, but their handler times do not") {
    canary_stats s;
    for (int i = 0; i < 15; ++i) s.record(std::chrono::milliseconds{i < 10 ? 50 : 2}, i == 0);
    CHECK(s.requests == 15);
    CHECK(s.errors == 1);
    canary_side side;
    side.add(s);
    CHECK(side.timed() == 5);
    CHECK(*side.p99_ms() == doctest::Approx(2.0).epsilon(0.05));
}

TEST_CASE("a small canary's p99 rolls it back only when even the low end of its interval is over") {
    const auto s = settings();
    canary_side serving = side(6, 1000, 0, 2000);
    canary_side canary = side(7, 100, 0, 2000);
    canary.latency[canary_latency::bucket_of(2000)] = 97;
    canary.latency[canary_latency::bucket_of(20000)] = 3;  // three hiccups: p99 20 ms
    CHECK(*canary.p99_ms() == doctest::Approx(20.0).epsilon(0.05));
    CHECK(*canary.p99_low_ms(canary_p99_z) == doctest::Approx(2.0).epsilon(0.05));
    // Not rolled back on three requests, not promoted above the bound either: more evidence.
    CHECK(judge_canary(s, one(serving, canary), 5000ms).what == canary_verdict::kind::undecided);
    canary.latency[canary_latency::bucket_of(2000)] = 90;
    canary.latency[canary_latency::bucket_of(20000)] = 10;  // one in ten: a slow version
    CHECK(judge_canary(s, one(serving, canary), 5000ms).what == canary_verdict::kind::roll_back);
}
