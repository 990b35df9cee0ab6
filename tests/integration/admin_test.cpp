// The admin endpoint: health, status, Prometheus metrics, reloads over HTTP, and the
// drain that a stop with shutdown_delay_ms announces through it.
#include <doctest/doctest.h>

#include <signal.h>

#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "metric_samples.hpp"
#include "plugd_process.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

// The instance is called "greeting" whichever plugin file serves it: `file` "echo" (the
// test plugin) lets a test hold a request until it releases it.
std::string config(const std::string& greeting_config = "{}", const std::string& limits = "{}",
                   const std::string& file = "greeting") {
    const auto dir = file == "greeting" ? bundled_plugin_dir() : test_plugin_dir();
    return R"({ "threads": 2, "plugin_dir": ")" + dir.string() + R"(",
        "plugins": { "greeting": { "file": ")" +
           file + R"(", "config": )" + greeting_config + R"( } },
        "listeners": [
            { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "greeting" },
            { "name": "web", "address": "127.0.0.1", "port": 0, "framing": "http",
              "plugin": "greeting" } ],
        "limits": )" +
           limits + R"(,
        "admin": { "address": "127.0.0.1", "port": 0 } })";
}

struct admin_server {
    explicit admin_server(const std::string& text = config())
        : cfg{tmp.write("server.json", text)},
          process{{"-c", cfg.string()}},
          line{process.port("main")},
          web{process.port("web")},
          admin{process.admin_port()} {}

    json status() {
        auto r = http_request(admin, "GET", "/status");
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return json::parse(r->body);
    }

    temp_dir tmp;
    std::filesystem::path cfg;
    plugd_process process;
    std::uint16_t line, web, admin;
};

// Polls /status until `done` holds for it (an operator's way to watch); bounded.
bool status_until(admin_server& s, const std::function<bool(const json&)>& done) {
    for (int i = 0; i < 200; ++i) {
        if (done(s.status())) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST_CASE("admin: /healthz is 200 while serving, /status names listeners and plugins") {
    admin_server s;
    auto health = http_request(s.admin, "GET", "/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(json::parse(health->body)["state"] == "serving");

    line_client held{s.line};  // counted among open connections
    CHECK(ask(s.line, "x") == "Hello, x");
    REQUIRE(
        status_until(s, [](const json& j) { return j["listeners"][0]["open_connections"] == 1; }));
    const json j = s.status();
    CHECK(j["version"].is_string());
    CHECK(j["pid"] == s.process.pid());
    CHECK(j["generation"] == 1);
    CHECK(j["state"] == "serving");
    CHECK(j["uptime_seconds"].is_number());
    REQUIRE(j["listeners"].size() == 2);
    CHECK(j["listeners"][0]["name"] == "main");
    CHECK(j["listeners"][0]["address"] == "127.0.0.1");
    CHECK(j["listeners"][0]["port"] == s.line);
    CHECK(j["listeners"][0]["framing"] == "line");
    CHECK(j["listeners"][0]["plugin"] == "greeting");
    CHECK(j["listeners"][1]["framing"] == "http");
    CHECK(j["listeners"][1]["port"] == s.web);
    const json& g = j["plugins"]["greeting"];
    CHECK(g["generation"] == 1);
    CHECK(g["file"].get<std::string>().ends_with("greeting.so"));
    CHECK(g["sha"].get<std::string>().size() == 16);
    CHECK(g["abi"].get<std::string>().starts_with("sdk="));
    CHECK(g["loaded_at_unix_ms"].get<std::int64_t>() > 0);
    CHECK(g["draining"].empty());

    auto missing = http_request(s.admin, "GET", "/nothing");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    auto wrong = http_request(s.admin, "GET", "/reload");
    REQUIRE(wrong);
    CHECK(wrong->status == 405);
}

TEST_CASE("admin: /metrics is Prometheus text whose counters move with traffic") {
    admin_server s;
    const auto before = scrape_metrics(s.admin);
    const std::string main = R"({listener="main",plugin="greeting"})";
    const std::string web = R"({listener="web",plugin="greeting"})";
    REQUIRE(before.find("plugd_requests_total" + main));
    CHECK(before.at("plugd_generation") == 1);

    line_client c{s.line};
    for (int i = 0; i < 5; ++i) {
        c.send("n" + std::to_string(i) + "\n");
        REQUIRE(c.read_line() == "Hello, n" + std::to_string(i));
    }
    for (int i = 0; i < 3; ++i) {
        auto r = http_request(s.web, "GET", "/w");
        REQUIRE(r);
        CHECK(r->body == "Hello, w");
    }
    auto bad = http_request(s.web, "BAD REQUEST", "x");  // a malformed request line: 400
    REQUIRE(bad);
    CHECK(bad->status == 400);

    const auto after = scrape_metrics(s.admin);
    auto moved = [&](const std::string& name) { return after.at(name) - before.at(name); };
    CHECK(moved("plugd_requests_total" + main) == 5);
    CHECK(moved("plugd_requests_total" + web) == 3);
    CHECK(moved("plugd_request_duration_seconds_count" + main) == 5);
    CHECK(
        after.at(
            R"(plugd_request_duration_seconds_bucket{listener="main",plugin="greeting",le="+Inf"})") ==
        after.at("plugd_request_duration_seconds_count" + main));
    CHECK(moved(R"(plugd_connections_accepted_total{listener="web"})") == 4);
    CHECK(moved(R"(plugd_bad_requests_total{listener="web"})") == 1);
    CHECK(moved(R"(plugd_received_bytes_total{listener="main"})") == 15);  // "nI\n" five times
    CHECK(moved(R"(plugd_sent_bytes_total{listener="main"})") == 5 * 10);  // "Hello, nI\n"
    CHECK(after.at(R"(plugd_connections_open{listener="main"})") == 1);
    CHECK(
        after.at(
            R"(plugd_request_errors_total{listener="main",plugin="greeting",kind="exception"})") ==
        0);
}

TEST_CASE("admin: POST /reload answers 200 with the new generation, or 409 with the error") {
    admin_server s;
    s.tmp.write("server.json", config(R"({ "prefix": "Hi, " })"));
    auto ok = http_request(s.admin, "POST", "/reload");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    const json body = json::parse(ok->body);
    CHECK(body["ok"] == true);
    CHECK(body["generation"] == 2);
    CHECK(ask(s.line, "you") == "Hi, you");

    s.tmp.write("server.json", config(R"({ "prefix": "Hi, ", "delay_ms": -1 })"));
    auto refused = http_request(s.admin, "POST", "/reload");
    REQUIRE(refused);
    CHECK(refused->status == 409);
    const json why = json::parse(refused->body);
    CHECK(why["ok"] == false);
    CHECK(why["generation"] == 2);
    CHECK(why["error"].get<std::string>().find("delay_ms must be 0 or more") != std::string::npos);
    CHECK(ask(s.line, "still") == "Hi, still");

    const auto m = scrape_metrics(s.admin);
    CHECK(m.at(R"(plugd_reloads_total{outcome="ok"})") == 1);
    CHECK(m.at(R"(plugd_reloads_total{outcome="failed"})") == 1);
    CHECK(m.at("plugd_generation") == 2);
}

TEST_CASE("admin: /status shows a replaced version draining with its request in flight") {
    // "old" is answered only once the new version has handled "release": it is in flight
    // throughout the reload, however long that takes on a loaded machine.
    admin_server s{config(R"({ "hold_on": "old" })", "{}", "echo")};
    line_client slow{s.line};
    slow.send("old\n");
    REQUIRE(
        status_until(s, [](const json& j) { return j["plugins"]["greeting"]["in_flight"] == 1; }));
    s.tmp.write("server.json", config(R"({ "release_on": "release", "pad": 1 })", "{}", "echo"));
    auto r = http_request(s.admin, "POST", "/reload");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const json j = s.status();
    const json& g = j["plugins"]["greeting"];
    CHECK(g["generation"] == 2);
    CHECK(g["in_flight"] == 0);
    REQUIRE(g["draining"].size() == 1);
    CHECK(g["draining"][0]["generation"] == 1);
    CHECK(g["draining"][0]["in_flight"] == 1);
    CHECK(ask(s.line, "release") == "v1:release.");  // the new version pads its replies
    CHECK(slow.read_line() == "v1:old");             // finished on the version it started on
    CHECK(status_until(s,
                       [](const json& j) { return j["plugins"]["greeting"]["draining"].empty(); }));
}

TEST_CASE(
    "admin: a stop with shutdown_delay_ms drains first: 503, Connection: close, still serving") {
    // Long enough that the requests below surely come while it drains, on a loaded machine.
    admin_server s{config("{}", R"({ "shutdown_delay_ms": 3000 })")};
    line_client keep_alive{s.web};
    keep_alive.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    auto first = read_response(keep_alive);
    REQUIRE(first);
    CHECK(first->headers.count("connection") == 0);

    const auto stop = std::chrono::steady_clock::now();
    s.process.signal(SIGTERM);
    REQUIRE(s.process.wait_for_log("draining for shutdown_delay_ms"));
    auto health = http_request(s.admin, "GET", "/healthz");
    REQUIRE(health);
    CHECK(health->status == 503);
    CHECK(json::parse(health->body)["state"] == "draining");
    keep_alive.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    auto last = read_response(keep_alive);
    REQUIRE(last);
    CHECK(last->body == "Hello, b");
    CHECK(last->headers["connection"] == "close");
    CHECK(keep_alive.read_to_eof() == "");
    CHECK(ask(s.line, "still") == "Hello, still");  // new connections are still served

    CHECK(s.process.wait_exit() == 0);
    CHECK(std::chrono::steady_clock::now() - stop >= 3000ms);
    const std::string log = s.process.log();
    CHECK(log.find("no longer accepting") > log.find("draining for shutdown_delay_ms"));
}

namespace {

using clock_type = std::chrono::steady_clock;

milliseconds since(clock_type::time_point start) {
    return std::chrono::duration_cast<milliseconds>(clock_type::now() - start);
}

// `method target` on a new connection with `Authorization: <authorization>` (none if empty).
std::optional<http_response> admin_request(std::uint16_t port, const std::string& method,
                                           const std::string& target,
                                           const std::string& authorization) {
    line_client c{port};
    c.send(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
           (authorization.empty() ? "" : "Authorization: " + authorization + "\r\n") +
           "Content-Length: 0\r\n\r\n");
    return read_response(c);
}

// A config for the echo test plugin (its "construct_ms" makes the constructor slow).
std::string echo_config(const std::string& echo_config, const std::string& admin) {
    return R"({ "threads": 1, "plugin_dir": ")" + test_plugin_dir().string() + R"(",
        "plugins": { "echo": { "file": "echo", "config": )" +
           echo_config + R"( } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "echo" } ],
        "admin": )" +
           admin + " }";
}

}  // namespace

TEST_CASE(
    "admin: /healthz answers at once while 40 connections trickle requests a byte at a time") {
    admin_server s;
    const std::string request = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    std::vector<line_client> tricklers;
    for (int i = 0; i < 40; ++i) {
        tricklers.emplace_back(s.admin);
        tricklers.back().send(request.substr(0, 1));
    }
    // Each round: one more byte from every trickler still open, then a health check from a
    // newcomer. A slot-holder must not keep it waiting, nor be the reason it is closed.
    int closed = 0;
    for (std::size_t round = 1; round < 12; ++round) {
        for (auto& t : tricklers) {
            try {
                t.send(request.substr(round, 1));
            } catch (const std::exception&) {
                ++closed;  // made room for a newcomer: expected for some of them
            }
        }
        const auto asked = clock_type::now();
        auto health = http_request(s.admin, "GET", "/healthz");
        REQUIRE_MESSAGE(health, "round " << round << ": no answer to /healthz");
        CHECK(health->status == 200);
        CHECK(since(asked) < 500ms);
        std::this_thread::sleep_for(100ms);  // the trickle's pace, not a synchronisation
    }
    CHECK(closed > 0);
}

TEST_CASE("admin: a request trickled a byte at a time is closed at its deadline") {
    admin_server s;
    line_client trickler{s.admin};
    // Sends "x" every 20 ms (an endless method name) until the server closes the connection.
    const auto closed_after = trickler.wait_closed(15s);
    REQUIRE_MESSAGE(closed_after, "a trickling client kept its admin connection for 15 s");
    CHECK(*closed_after >= 4500ms);  // the whole request's deadline is 5 s
    CHECK(*closed_after < 8s);
}

TEST_CASE("admin: /healthz, /status and /metrics answer within 100 ms throughout a slow reload") {
    temp_dir tmp;
    const std::string admin = R"({ "address": "127.0.0.1", "port": 0 })";
    const auto cfg = tmp.write("server.json", echo_config("{}", admin));
    plugd_process process{{"-c", cfg.string()}};
    const std::uint16_t port = process.admin_port();
    // The constructor takes 3 s, in the trial load and again in the real load.
    tmp.write("server.json", echo_config(R"({ "construct_ms": 3000 })", admin));
    std::optional<http_response> reloaded;
    std::jthread reload{[&] { reloaded = http_request(port, "POST", "/reload", "", 20s); }};
    REQUIRE(process.wait_for_log("constructing"));
    milliseconds slowest{0};
    std::string slowest_target;
    int answered = 0;
    const auto began = clock_type::now();
    // Until the reload has run both constructors (bounded: 20 s).
    while (process.count_log("constructing") < 2 || process.count_log("reload: generation") == 0) {
        REQUIRE(since(began) < 20s);
        for (const char* target : {"/healthz", "/status", "/metrics"}) {
            const auto asked = clock_type::now();
            auto r = http_request(port, "GET", target, "", 2s);
            REQUIRE_MESSAGE(r, target << " unanswered during the reload");
            CHECK(r->status == 200);
            if (since(asked) > slowest) slowest = since(asked), slowest_target = target;
            ++answered;
        }
        std::this_thread::sleep_for(20ms);
    }
    reload.join();
    REQUIRE(reloaded);
    CHECK(reloaded->status == 200);
    CHECK(json::parse(reloaded->body)["generation"] == 2);
    // The goal is 100 ms; a sanitizer build's own slowness gets more (the fault was seconds).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    constexpr milliseconds prompt{500};
#else
    constexpr milliseconds prompt{100};
#endif
    CHECK_MESSAGE(slowest < prompt,
                  "slowest answer: " << slowest_target << " after " << slowest.count() << " ms");
    CHECK(answered > 60);  // asked throughout the 6 s, not once
    CHECK(since(began) >= 5s);
}

TEST_CASE(
    "admin: with a token_file every endpoint but /healthz and /livez wants the bearer token") {
    temp_dir tmp;
    const std::string token = "s3cret-token-0123456789abcdef";
    const auto token_file = tmp.write("admin.token", token + "\n");
    std::filesystem::permissions(
        token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    const auto cfg = tmp.write(
        "server.json",
        echo_config("{}", R"({ "address": "127.0.0.1", "port": 0, "token_file": "admin.token" })"));
    plugd_process process{{"-c", cfg.string()}};
    const std::uint16_t port = process.admin_port();

    for (const char* open : {"/healthz", "/livez"}) {
        auto r = admin_request(port, "GET", open, "");
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/status"}, {"GET", "/metrics"}, {"POST", "/reload"}, {"GET", "/nothing"}}) {
        CAPTURE(target);
        for (const std::string& wrong :
             std::vector<std::string>{"", "Bearer " + token + "x", "Bearer " + token.substr(1),
                                      "Basic " + token, "Bearer", "bearer  wrong"}) {
            CAPTURE(wrong);
            auto r = admin_request(port, method, target, wrong);
            REQUIRE(r);
            CHECK(r->status == 401);
            CHECK(r->headers["www-authenticate"].starts_with("Bearer"));
            CHECK(r->body.find(token.substr(0, 6)) == std::string::npos);
        }
    }
    auto status = admin_request(port, "GET", "/status", "Bearer " + token);
    REQUIRE(status);
    CHECK(status->status == 200);
    CHECK(json::parse(status->body)["generation"] == 1);
    auto metrics = admin_request(port, "GET", "/metrics", "bearer " + token);  // any case
    REQUIRE(metrics);
    CHECK(metrics->status == 200);
    auto reload = admin_request(port, "POST", "/reload", "Bearer " + token);
    REQUIRE(reload);
    CHECK(reload->status == 200);
    CHECK(json::parse(reload->body)["ok"] == true);
    CHECK(process.log().find(token) == std::string::npos);
}

TEST_CASE(
    "admin: -t and start refuse allow_remote without a token_file, and a token others can read") {
    temp_dir tmp;
    const auto remote = tmp.write(
        "server.json",
        echo_config("{}", R"({ "address": "0.0.0.0", "port": 0, "allow_remote": true })"));
    for (const bool check : {true, false}) {
        auto r =
            check ? run_plugd({"-t", "-c", remote.string()}) : run_plugd({"-c", remote.string()});
        CHECK(r.status != 0);
        CHECK_MESSAGE(r.output.find("/admin/allow_remote") != std::string::npos, r.output);
        CHECK_MESSAGE(r.output.find("token_file") != std::string::npos, r.output);
    }

    const auto token_file = tmp.write("admin.token", "s3cret-token-0123456789abcdef\n");
    std::filesystem::permissions(
        token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                        std::filesystem::perms::group_read | std::filesystem::perms::others_read);
    const auto readable =
        tmp.write("server.json", echo_config("{}", R"({ "address": "0.0.0.0", "port": 0,
                                             "allow_remote": true, "token_file": "admin.token" })"));
    for (const bool check : {true, false}) {
        auto r = check ? run_plugd({"-t", "-c", readable.string()})
                       : run_plugd({"-c", readable.string()});
        CHECK(r.status != 0);
        CHECK_MESSAGE(r.output.find(token_file.string()) != std::string::npos, r.output);
        CHECK_MESSAGE(r.output.find("chmod 600 " + token_file.string()) != std::string::npos,
                      r.output);
    }
    std::filesystem::permissions(
        token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto ok = run_plugd({"-t", "-c", readable.string()});
    CHECK_MESSAGE(ok.status == 0, ok.output);
}

TEST_CASE(
    "admin: /livez is 200 while alive, through a drain too, and 503 while a serving thread is "
    "stalled") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json", R"({ "threads": 1, "plugin_dir": ")" + test_plugin_dir().string() + R"(",
        "plugins": { "p": { "file": "faulty" } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ],
        "limits": { "stall_warn_ms": 100, "shutdown_delay_ms": 1000 },
        "admin": { "address": "127.0.0.1", "port": 0 } })");
    plugd_process p{{"-c", cfg.string()}};
    const auto admin = p.admin_port();
    const auto livez = [&](int status, const std::string& state, int stalled) {
        auto r = http_request(admin, "GET", "/livez");
        REQUIRE(r);
        CHECK(r->status == status);
        const json body = json::parse(r->body);
        CHECK(body["state"] == state);
        CHECK(body["stalled_threads"] == stalled);
    };
    livez(200, "serving", 0);

    // A handler that blocks its thread: a stall from its report to its end.
    line_client c{p.port("main")};
    c.send("block 1500\n");
    REQUIRE_MESSAGE(p.wait_for_log("has not returned to its event loop"), p.log());
    livez(503, "serving", 1);
    CHECK(c.read_line(10s) == "faulty:block 1500");
    REQUIRE_MESSAGE(p.wait_for_log("stall ended"), p.log());
    livez(200, "serving", 0);

    // Draining: not ready for new traffic, but alive.
    p.signal(SIGTERM);
    REQUIRE(p.wait_for_log("draining for shutdown_delay_ms"));
    auto health = http_request(admin, "GET", "/healthz");
    REQUIRE(health);
    CHECK(health->status == 503);
    livez(200, "draining", 0);
    CHECK(p.wait_exit() == 0);
}
