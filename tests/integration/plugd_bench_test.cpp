// plugd-bench, the installed load generator, against the real plugd: it counts, checks
// every reply, and fails when a reply differs or the server is not there.
#include <doctest/doctest.h>

#include <signal.h>

#include <nlohmann/json.hpp>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

struct greeting_server {
    greeting_server() {
        const std::string config = R"({ "threads": 1, "plugin_dir": ")" +
                                   bundled_plugin_dir().string() + R"(", "plugins": {
              "greeting": { "file": "greeting" },
              "slow": { "file": "greeting", "config": { "delay_ms": 200 } } },
            "listeners": [
              { "name": "main", "port": 0, "plugin": "greeting" },
              { "name": "one", "port": 0, "framing": "oneshot", "plugin": "greeting" },
              { "name": "slow", "port": 0, "plugin": "slow" } ] })";
        process.emplace(std::vector<std::string>{"-c", tmp.write("server.json", config).string()});
        line = process->port("main");
        oneshot = process->port("one");
        slow = process->port("slow");
        REQUIRE(process->wait_for_log("serving generation 1"));
    }
    temp_dir tmp;
    std::optional<plugd_process> process;
    std::uint16_t line = 0, oneshot = 0, slow = 0;
};

run_result bench(std::vector<std::string> args) {
    return run_program(PLUGD_BENCH_BINARY, std::move(args), 30s);
}

nlohmann::json json_of(const run_result& r) {
    return nlohmann::json::parse(r.output.substr(0, r.output.find('\n')));
}

}  // namespace

TEST_CASE("plugd-bench measures line, pipelined and oneshot load with every reply checked") {
    greeting_server s;
    auto r = bench({"--port", std::to_string(s.line), "--connections", "8", "--duration", "0.5",
                    "--warmup", "0.1", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    auto j = json_of(r);
    CHECK(j["requests"].get<long>() > 100);
    CHECK(j["errors"] == 0);
    CHECK(j["mismatches"] == 0);
    CHECK(j["latency_us"]["p50"].get<long>() <= j["latency_us"]["p99"].get<long>());
    CHECK(j["latency_us"]["p99"].get<long>() <= j["latency_us"]["max"].get<long>());

    r = bench({"--port", std::to_string(s.line), "--connections", "4", "--pipeline", "16",
               "--duration", "0.3", "--warmup", "0", "--message", "pipelined", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(json_of(r)["requests"].get<long>() % 16 == 0);

    r = bench({"--port", std::to_string(s.oneshot), "--mode", "oneshot", "--connections", "4",
               "--duration", "0.3", "--warmup", "0", "--size", "3000", "--expect",
               "Hello, " + std::string(3000, 'x'), "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(json_of(r)["requests"].get<long>() > 0);
}

TEST_CASE("plugd-bench fails on a differing reply, a missing server and bad usage, saying which") {
    greeting_server s;
    auto r = bench({"--port", std::to_string(s.line), "--duration", "0.2", "--warmup", "0",
                    "--expect", "Bonjour, world"});
    CHECK(r.status == 1);
    CHECK(r.output.find("expected \"Bonjour, world\", got e.g. \"Hello, world\"") !=
          std::string::npos);

    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait_exit() == 0);
    r = bench({"--port", std::to_string(s.line), "--duration", "0.2", "--warmup", "0"});
    CHECK(r.status == 1);
    CHECK(r.output.find("first: connect: Connection refused") != std::string::npos);

    r = bench({"--port", "1", "--mode", "udp"});
    CHECK(r.status == 2);
    CHECK(r.output.find("--mode takes line, oneshot or http, not \"udp\"") != std::string::npos);
}

TEST_CASE("plugd-bench holds slow connections beside the measured load, and churns") {
    greeting_server s;
    // The held connections wait 200 ms per request on another listener of the same server.
    auto r = bench({"--port", std::to_string(s.slow), "--connections", "4", "--duration", "0.5",
                    "--warmup", "0", "--held", "20", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(json_of(r)["held_requests"].get<long>() >= 20);
    r = bench({"--port", std::to_string(s.line), "--connections", "4", "--duration", "0.3",
               "--warmup", "0", "--churn", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(json_of(r)["requests"].get<long>() > 0);
}
