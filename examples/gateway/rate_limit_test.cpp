// rate_limit's tests, through plugd's test harness (<plugd/testing.hpp>). Most run the
// filter's class compiled in with a clock of the test's own: plugd's manual clock moves
// ctx.sleep_for, not std::chrono::steady_clock, which the plugin reads.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "rate_limit.hpp"

using namespace std::chrono_literals;
using plugd::testing::chain_link;
using plugd::testing::options;
using plugd::testing::plugin_host;

namespace {

// Microseconds; slots of whole seconds begin at every multiple of 1'000'000.
std::atomic<std::int64_t> test_now_us{0};
std::int64_t test_now() {
    return test_now_us.load();
}
void set_clock(std::chrono::microseconds since_a_slot_began) {
    test_now_us = 1'000'000'000'000 + since_a_slot_began.count();
}
void advance(std::chrono::microseconds by) {
    test_now_us += by.count();
}

class limit_on_test_clock final : public gateway::rate_limit {
  public:
    explicit limit_on_test_clock(plugd::context& ctx) : rate_limit{ctx, &test_now} {}
};

// What answers behind the limit.
class answer final : public plugd::handler {
  public:
    explicit answer(plugd::context&) {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        out << "ok " << req.message();
        co_return;
    }
};

plugin_host limited(nlohmann::json config, unsigned threads = 2) {
    options o;
    o.threads = threads;
    o.filters.push_back(chain_link::of<limit_on_test_clock>(std::move(config), "limit"));
    return plugin_host::of<answer>(std::move(o));
}

// How many of `n` GET calls in a row pass.
int passing(plugin_host& host, int n) {
    int passed = 0;
    for (int i = 0; i < n; ++i) passed += host.call_http("GET", "/x").status == 200 ? 1 : 0;
    return passed;
}

}  // namespace

TEST_CASE("rate_limit: a burst of 10 at 1/s passes, the 11th gets 429 with Retry-After") {
    set_clock(500ms);
    plugin_host host = limited({{"per_second", 1}, {"burst", 10}});
    for (int i = 0; i < 10; ++i) {
        const auto r = host.call_http("GET", "/x");
        CHECK(r.status == 200);
        CHECK(r.body == "ok x");
    }
    const auto r = host.call_http("GET", "/x");
    CHECK(r.status == 429);
    CHECK(r.fields == "Retry-After: 1\r\n");
    CHECK(r.body == "too many requests; retry in 1 s");

    advance(499ms);  // still the same second: no new token
    CHECK(passing(host, 3) == 0);
    advance(1ms);  // the next one: one token
    CHECK(passing(host, 3) == 1);
    advance(3s);
    CHECK(passing(host, 5) == 3);
    // Idle for an hour: a full bucket, never more.
    advance(3600s);
    CHECK(passing(host, 20) == 10);
}

TEST_CASE("rate_limit: slots are taken in the shared state; where to look first is a hint") {
    set_clock(0ms);
    plugin_host host = limited({{"per_second", 1}, {"burst", 4}});
    CHECK(passing(host, 4) == 4);
    // Without the hint a request looks at every slot from the current one, and finds each
    // taken: the increment that took it is what counts, in every thread and process.
    CHECK(host.shared("limit").erase("127.0.0.1@next"));
    CHECK(host.call_http("GET", "/x").status == 429);
    advance(1s);  // still no hint (a refusal writes none): one slot is free
    CHECK(passing(host, 3) == 1);
}

TEST_CASE("rate_limit: Retry-After is the wait in whole seconds, rounded up") {
    set_clock(500ms);
    plugin_host host = limited({{"per_second", 0.1}, {"burst", 2}});  // one every 10 s
    CHECK(passing(host, 2) == 2);
    auto r = host.call_http("GET", "/x");
    CHECK(r.status == 429);
    CHECK(r.fields == "Retry-After: 10\r\n");  // 9.5 s
    advance(9400ms);
    CHECK(host.call_http("GET", "/x").fields == "Retry-After: 1\r\n");  // 0.1 s
    advance(100ms);
    CHECK(passing(host, 2) == 1);
    r = host.call_http("GET", "/x");
    CHECK(r.fields == "Retry-After: 10\r\n");
}

TEST_CASE("rate_limit: burst defaults to per_second, and a line request gets an ERR line") {
    set_clock(0ms);
    plugin_host host = limited({{"per_second", 3}});
    CHECK(host.call("a") == "ok a");
    CHECK(host.call("b") == "ok b");
    CHECK(host.call("c") == "ok c");
    CHECK(host.call("d") == "ERR too many requests; retry in 1 s");
}

TEST_CASE("rate_limit: concurrent requests on every thread never take the same token") {
    set_clock(250ms);
    plugin_host host = limited({{"per_second", 1}, {"burst", 10}}, 4);
    const auto replies = host.call_concurrently(std::vector<std::string>(200, "m"));
    int passed = 0, refused = 0;
    for (const auto& r : replies) {
        passed += r == "ok m" ? 1 : 0;
        refused += r == "ERR too many requests; retry in 1 s" ? 1 : 0;
    }
    CHECK(passed == 10);
    CHECK(refused == 190);
}

TEST_CASE("rate_limit: a client's entries in the shared state expire once its slots pass") {
    set_clock(0ms);
    // Slots of 10 ms: the entries outlive them by a second, on the shared map's own clock.
    plugin_host host = limited({{"per_second", 100}, {"burst", 5}});
    CHECK(passing(host, 8) == 5);
    // Five taken slots and where the next free one is: refused requests add nothing.
    CHECK(host.shared("limit").size() == 6);
    for (int i = 0; i < 400 && host.shared("limit").size() > 0; ++i)
        std::this_thread::sleep_for(10ms);
    CHECK(host.shared("limit").size() == 0);
}

TEST_CASE("rate_limit: client_address keeps the IP address of a peer") {
    CHECK(gateway::client_address("192.0.2.7:40000") == "192.0.2.7");
    CHECK(gateway::client_address("[2001:db8::1]:443") == "2001:db8::1");
    CHECK(gateway::client_address("local") == "local");
}

TEST_CASE("rate_limit refuses a config it cannot use, naming the key") {
    const auto refused = [](nlohmann::json config, const char* why) {
        options o;
        o.filters.push_back({.plugin_file = PLUGIN_FILE, .config = std::move(config)});
        CHECK_THROWS_WITH_AS(
            plugin_host(GREETER_FILE, o),
            doctest::Contains(
                ("refused its config (/plugins/rate_limit/config): " + std::string{why}).c_str()),
            std::runtime_error);
    };
    refused(nlohmann::json::object(), "per_second: missing");
    refused({{"per_second", 0}}, "per_second: expected a number from 0.0001 to 1000000, got 0");
    refused({{"per_second", "5"}}, "per_second: expected a number");
    refused({{"per_second", 5}, {"burst", 0}}, "burst: expected a whole number from 1 to 10000");
    refused({{"per_second", 5}, {"burst", 2.5}}, "burst: expected a whole number");
    refused({{"per_second", 5}, {"burst", 20000}}, "burst: expected a whole number");
}

TEST_CASE("rate_limit as built, on the real clock, before the greeter") {
    options o;
    // One request every 1000 s: no slot boundary falls between these calls.
    o.filters.push_back(
        {.plugin_file = PLUGIN_FILE, .config = {{"per_second", 0.001}, {"burst", 3}}});
    plugin_host host{GREETER_FILE, o};
    for (int i = 0; i < 3; ++i) CHECK(host.call("ann") == "Hello, ann!");
    const auto refused = host.call_http("GET", "/ann");
    CHECK(refused.status == 429);
    const int retry = std::stoi(refused.fields.substr(std::string{"Retry-After: "}.size()));
    CHECK(retry >= 1);
    CHECK(retry <= 1000);
    CHECK(host.shared("rate_limit").size() == 4);
}
