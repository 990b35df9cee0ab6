// The admin endpoint with supervised workers: the master serves it, from what every worker
// counted (kept when one dies) and published.
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "metric_samples.hpp"
#include "plugd_process.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

std::string config(const std::string& plugin_config = "{}", const std::string& limits = "{}") {
    return R"({ "workers": 2, "threads": 1, "plugin_dir": ")" + test_plugin_dir().string() +
           R"(", "plugins": { "p": { "file": "faulty", "config": )" + plugin_config +
           R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ],
           "limits": )" +
           limits + R"(, "admin": { "address": "127.0.0.1", "port": 0 } })";
}

struct master {
    explicit master(const std::string& text = config())
        : cfg{tmp.write("server.json", text)},
          process{{"-c", cfg.string()}},
          port{process.port("main")},
          admin{process.admin_port()} {
        REQUIRE(process.wait_for_log("serving generation 1", 10s, 2));
    }

    std::optional<http_response> get(const std::string& target) {
        return http_request(admin, "GET", target);
    }

    json status() {
        auto r = get("/status");
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return json::parse(r->body);
    }

    metric_samples metrics() { return scrape_metrics(admin); }

    // The worker a fresh connection reaches answers with its pid.
    int ask_pid() {
        const std::string reply = ask(port, "pid");
        REQUIRE(reply.starts_with("faulty:pid="));
        return std::stoi(reply.substr(11));
    }

    // Polls `condition` every 10 ms until it holds; false after `timeout`.
    template <class Condition>
    static bool eventually(Condition condition, milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!condition()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
        return true;
    }

    bool ready() {
        auto r = get("/healthz");
        return r && r->status == 200;
    }

    // Every worker has reported that it serves (a new worker reports within 200 ms of its
    // start; /healthz does not wait for that, a respawn has a grace period).
    bool all_up() {
        const json s = status();
        for (const auto& w : s["workers"]) {
            if (w["up"] != true) return false;
        }
        return s["workers"].size() == 2;
    }

    temp_dir tmp;
    std::filesystem::path cfg;
    plugd_process process;
    std::uint16_t port, admin;
};

constexpr const char* requests_total = R"(plugd_requests_total{listener="main",plugin="p"})";
constexpr const char* accepted_total = R"(plugd_connections_accepted_total{listener="main"})";

}  // namespace

TEST_CASE(
    "workers with admin: /metrics counts every request of both workers, also across a worker "
    "crash, and /status lists the workers") {
    master m;
    REQUIRE(m.eventually([&] { return m.ready() && m.all_up(); }));
    const json before = m.status();
    REQUIRE(before["workers"].size() == 2);
    std::set<long> worker_pids;
    for (const auto& w : before["workers"]) {
        CHECK(w["up"] == true);
        CHECK(w["generation"] == 1);
        CHECK(w["restarts"] == 0);
        worker_pids.insert(w["pid"].get<long>());
    }
    CHECK(worker_pids.size() == 2);
    CHECK(before["pid"] == m.process.pid());
    CHECK(before["plugins"]["p"]["generation"] == 1);

    const auto start = m.metrics();
    const double requests_before = start.find(requests_total).value_or(0);
    const double accepted_before = start.find(accepted_total).value_or(0);

    // 100 requests on fresh connections, over both workers: the kernel spreads them, and
    // if one worker happened to take them all, it is paused until the other has answered.
    std::set<int> answered_by;
    int sent = 0;
    for (; sent < 100; ++sent) answered_by.insert(m.ask_pid());
    for (int i = 0; i < 20 && answered_by.size() < 2; ++i, ++sent) {
        paused_workers paused;
        REQUIRE(paused.pause(*answered_by.begin()));
        answered_by.insert(m.ask_pid());
    }
    CHECK(answered_by == std::set<int>(worker_pids.begin(), worker_pids.end()));

    // One worker dies of a crash: what it counted stays in the totals.
    {
        line_client c{m.port};
        c.send("crash\n");
        CHECK_FALSE(c.read_line());
    }
    REQUIRE(m.process.wait_for_log("died of SIGSEGV", 10s));
    for (int i = 0; i < 100; ++i, ++sent) m.ask_pid();
    REQUIRE(m.process.wait_for_log("serving generation 1", 10s, 3));

    // Each reply left after its request was counted: the figures are exact now.
    const auto after = m.metrics();
    CHECK(after.at(requests_total) - requests_before == sent);
    CHECK(after.at(accepted_total) - accepted_before == sent + 1);  // and the crashing one
    CHECK(after.at(R"(plugd_worker_restarts_total{worker="0"})") +
              after.at(R"(plugd_worker_restarts_total{worker="1"})") ==
          1);

    REQUIRE(m.eventually([&] { return m.ready() && m.all_up(); }));
    const json now = m.status();
    REQUIRE(now["workers"].size() == 2);
    std::uint64_t restarts = 0;
    for (const auto& w : now["workers"]) {
        CHECK(w["up"] == true);
        restarts += w["restarts"].get<std::uint64_t>();
    }
    CHECK(restarts == 1);
}

TEST_CASE("workers with admin: /livez stays 200 through a drain while /healthz is 503") {
    master m{config("{}", R"({ "shutdown_delay_ms": 3000 })")};
    REQUIRE(m.eventually([&] { return m.ready(); }));
    CHECK(m.get("/livez")->status == 200);
    m.process.signal(SIGTERM);
    REQUIRE(m.eventually([&] {
        auto r = m.get("/healthz");
        return r && r->status == 503;
    }));
    auto health = m.get("/healthz");
    REQUIRE(health);
    CHECK(json::parse(health->body)["state"] == "draining");
    auto live = m.get("/livez");
    REQUIRE(live);
    CHECK(live->status == 200);
    CHECK(json::parse(live->body)["state"] == "draining");
    CHECK(m.ask_pid() > 0);  // still serving meanwhile
    CHECK(m.process.wait_exit(20s) == 0);
}

TEST_CASE("workers with admin: POST /reload answers the combined outcome of every worker") {
    master m;
    REQUIRE(m.eventually([&] { return m.ready(); }));
    m.tmp.write("server.json", config(R"({ "note": "second" })"));
    auto ok = http_request(m.admin, "POST", "/reload");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    const json body = json::parse(ok->body);
    CHECK(body["ok"] == true);
    CHECK(body["generation"] == 2);
    REQUIRE(m.eventually([&] {
        const json s = m.status();
        return s["generation"] == 2 && s["workers"][0]["generation"] == 2 &&
               s["workers"][1]["generation"] == 2;
    }));
    CHECK(m.ready());

    m.tmp.write("server.json", "{ not json");
    auto refused = http_request(m.admin, "POST", "/reload");
    REQUIRE(refused);
    CHECK(refused->status == 409);
    CHECK(json::parse(refused->body)["ok"] == false);
    CHECK(json::parse(refused->body)["error"].get<std::string>().find("server.json") !=
          std::string::npos);
    CHECK(m.status()["generation"] == 2);
    CHECK(m.metrics().at(R"(plugd_reloads_total{outcome="failed"})") == 1);
}
