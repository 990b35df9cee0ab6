// deploy/ for real: HAProxy (deploy/haproxy.cfg) in front of three plugd instances
// (deploy/server.json: two worker processes each, health-checked on the admin endpoint
// their master serves), continuous line and HTTP traffic through it, a rollout
// (deploy/rollout) of a new greeting prefix, one worker killed per instance, then one
// instance stopped gracefully.
#include <doctest/doctest.h>

#include <signal.h>

#include <array>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

const std::filesystem::path deploy = std::filesystem::path{PLUGD_SOURCE_DIR} / "deploy";
const char* const haproxy = "/usr/sbin/haproxy";

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in{p};
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Replaces every `from` in `text`; fails the test when there is none, so a deploy/ file
// that changed under the test cannot make it test something else.
std::string replace(std::string text, const std::string& from, const std::string& to) {
    const auto first = text.find(from);
    REQUIRE_MESSAGE(first != std::string::npos, "deploy/ file no longer has " << from);
    for (auto at = first; at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
    return text;
}

struct instance_ports {
    std::uint16_t line = unused_fixed_port(), http = unused_fixed_port(),
                  admin = unused_fixed_port();
    std::string admin_endpoint() const { return "127.0.0.1:" + std::to_string(admin); }
};

// deploy/server.json (instance 1 of the fleet) made instance `i` on free ports, its
// greeting's config `greeting` (the prefix, say), and `extra` top-level keys.
std::string instance_config(const instance_ports& p, const std::filesystem::path& dir,
                            const std::string& greeting, const std::string& extra) {
    std::string text = read_file(deploy / "server.json");
    text = replace(text, "8881", std::to_string(p.line));
    text = replace(text, "8891", std::to_string(p.http));
    text = replace(text, "9901", std::to_string(p.admin));
    text = replace(text, "/usr/local/lib/plugd", bundled_plugin_dir().string());
    text = replace(text, "/run/plugd-1/plugd.pid", (dir / "plugd.pid").string());
    if (!extra.empty()) text = replace(text, "\"workers\": 2,", "\"workers\": 2, " + extra + ",");
    return replace(text, "\"prefix\": \"Hello, \"", greeting);
}

// A greeting config with this prefix.
std::string prefixed(const std::string& prefix) {
    return "\"prefix\": \"" + prefix + "\"";
}

// The admin endpoints' bearer token, the same on every instance (admin.token_file).
const std::string admin_token = "fleet-token-0123456789abcdef";

struct fleet {
    /// `extra`: top-level keys every instance's server.json gets (a "canary" object).
    explicit fleet(std::size_t n, std::string extra_keys = {})
        : ports(n), extra{std::move(extra_keys)} {
        for (std::size_t i = 0; i < n; ++i) {
            const auto dir = tmp.path() / ("plugd" + std::to_string(i + 1));
            std::filesystem::create_directories(dir);
            configs.push_back(dir / "server.json");
            write(i, "Hello, ");
            // deploy/server.json names "admin.token", beside it; only its owner may read it.
            std::ofstream{dir / "admin.token"} << admin_token << "\n";
            std::filesystem::permissions(
                dir / "admin.token",
                std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
            instances.push_back(std::make_unique<plugd_process>(
                std::vector<std::string>{"-c", configs[i].string()}));
        }
        // Each instance's two workers (six processes loading plugins at once: slow under a
        // sanitizer).
        for (auto& p : instances)
            REQUIRE_MESSAGE(p->wait_for_log("serving generation 1", 30s, 2), p->log());
    }
    void write(std::size_t i, const std::string& prefix) { write_greeting(i, prefixed(prefix)); }
    /// Instance `i`'s greeting config members: `"prefix": "Hi, ", "delay_ms": 50`.
    void write_greeting(std::size_t i, const std::string& greeting) {
        std::ofstream{configs[i]} << instance_config(ports[i], configs[i].parent_path(), greeting,
                                                     extra);
    }
    // deploy/rollout's arguments: its token file (any instance's: they are the same) and
    // every admin endpoint.
    std::vector<std::string> rollout_args() const {
        std::vector<std::string> e{(deploy / "rollout").string(), "--token-file",
                                   (configs[0].parent_path() / "admin.token").string()};
        for (const auto& p : ports) e.push_back(p.admin_endpoint());
        return e;
    }
    nlohmann::json status(std::size_t i) {
        line_client c{ports[i].admin};
        c.send(
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Authorization: Bearer " +
            admin_token + "\r\n\r\n");
        auto r = read_response(c);
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return nlohmann::json::parse(r->body);
    }

    temp_dir tmp;
    std::vector<instance_ports> ports;
    std::string extra;
    std::vector<std::filesystem::path> configs;
    std::vector<std::unique_ptr<plugd_process>> instances;
};

// One client through HAProxy: a persistent connection, re-opened when the server side
// ends it. A line request that meets a connection closed between requests (EOF and not
// a byte of reply) was never handed to a handler: plugd closes only between requests.
// The client sends it again on a new connection, as a line client must (docs/operations.md).
struct client {
    std::uint16_t port;
    bool http;
    std::string name;
    std::unique_ptr<line_client> c = std::make_unique<line_client>(port);
    bool sent = false;

    void send(const std::string& message) {
        const std::string bytes =
            http ? "GET /" + message + " HTTP/1.1\r\nHost: fleet\r\n\r\n" : message + "\n";
        try {
            c->send(bytes);
        } catch (const std::exception&) {
            c = std::make_unique<line_client>(port);
            c->send(bytes);
        }
    }
    // The reply's text, or nullopt if none came.
    std::optional<std::string> receive() {
        if (http) {
            auto r = read_response(*c);
            if (!r || r->status != 200) return std::nullopt;
            if (r->headers["connection"] == "close") c = std::make_unique<line_client>(port);
            return r->body;
        }
        return c->read_line();
    }
};

struct traffic {
    std::vector<client> clients;
    std::size_t requests = 0, failures = 0, resent = 0, old_prefix_after_rollout = 0;
    std::size_t round = 0;
    std::string first_failure;

    // Every client sends one request, then every client reads its reply: as many requests
    // in flight as clients, from one thread.
    void run_round(bool rollout_done) {
        ++round;
        for (auto& cl : clients) cl.send(cl.name + "r" + std::to_string(round));
        for (auto& cl : clients) {
            const std::string message = cl.name + "r" + std::to_string(round);
            auto reply = cl.receive();
            if (!reply && !cl.http) {
                ++resent;  // EOF between requests: a new connection, the same request
                cl.c = std::make_unique<line_client>(cl.port);
                cl.send(message);
                reply = cl.receive();
            }
            ++requests;
            const bool old_ok = reply == "Hello, " + message;
            const bool new_ok = reply == "Howdy, " + message;
            if (!old_ok && !new_ok) {
                if (failures++ == 0)
                    first_failure = cl.name + ": " + message + " -> " + reply.value_or("<none>");
            } else if (rollout_done && old_ok) {
                ++old_prefix_after_rollout;
            }
        }
    }
};

// deploy/haproxy.cfg in front of fleet `f`, on free ports, ready when both frontends answer.
struct balancer {
    explicit balancer(fleet& f) {
        std::string cfg = read_file(deploy / "haproxy.cfg");
        cfg = replace(cfg, "127.0.0.1:7000", "127.0.0.1:" + std::to_string(line_front));
        cfg = replace(cfg, "127.0.0.1:7080", "127.0.0.1:" + std::to_string(http_front));
        for (std::size_t i = 0; i < 3; ++i) {
            const std::string n = std::to_string(i + 1);
            cfg = replace(cfg, "127.0.0.1:888" + n, "127.0.0.1:" + std::to_string(f.ports[i].line));
            cfg = replace(cfg, "127.0.0.1:889" + n, "127.0.0.1:" + std::to_string(f.ports[i].http));
            cfg = replace(cfg, "port 990" + n, "port " + std::to_string(f.ports[i].admin));
        }
        process.emplace(haproxy, std::vector<std::string>{
                                     "-f", f.tmp.write("haproxy.cfg", cfg).string(), "-db"});
        // Ready when both frontends answer (HAProxy logs nothing on start in -db mode).
        bool ready = false;
        for (int i = 0; i < 100 && !ready; ++i) {
            try {
                ready = ask(line_front, "up") == "Hello, up" &&
                        http_request(http_front, "GET", "/up").value_or(http_response{}).body ==
                            "Hello, up";
            } catch (const std::exception&) {
                std::this_thread::sleep_for(20ms);  // not bound yet: nothing to wait on but time
            }
        }
        REQUIRE_MESSAGE(ready, process->log());
    }
    // 8 line and 8 HTTP clients through it.
    traffic clients() const {
        traffic t;
        for (int i = 0; i < 8; ++i)
            t.clients.push_back({line_front, false, "l" + std::to_string(i)});
        for (int i = 0; i < 8; ++i)
            t.clients.push_back({http_front, true, "h" + std::to_string(i)});
        return t;
    }
    std::uint16_t line_front = unused_fixed_port(), http_front = unused_fixed_port();
    std::optional<plugd_process> process;
};

}  // namespace

TEST_CASE("fleet: behind HAProxy, a rollout and a graceful stop lose no request") {
    if (!std::filesystem::exists(haproxy)) {
        return skip_test("haproxy is not installed (apt-get install haproxy)");
    }
    fleet f{3};
    balancer front{f};
    traffic t = front.clients();
    for (int i = 0; i < 50; ++i) t.run_round(false);

    // The new prefix is staged on every instance; the rollout reloads them one by one.
    for (std::size_t i = 0; i < 3; ++i) f.write(i, "Howdy, ");
    plugd_process rollout{"/bin/sh", f.rollout_args()};
    std::optional<int> rolled;
    for (int i = 0; i < 20000 && !(rolled = rollout.wait_exit(0ms)); ++i) t.run_round(false);
    REQUIRE_MESSAGE(rolled == 0, rollout.log());
    CHECK(rollout.log().find("all 3 instances reloaded") != std::string::npos);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto s = f.status(i);
        CHECK(s["generation"] == 2);
        CHECK(s["state"] == "serving");
    }
    for (int i = 0; i < 50; ++i) t.run_round(true);

    // One worker of each instance dies, between two rounds: the connections it held
    // close between requests (line clients send again, HAProxy retries HTTP requests on
    // another connection), the other worker serves on, the master starts a new one.
    for (std::size_t i = 0; i < 3; ++i) {
        plugd_process& instance = *f.instances[i];
        const auto workers = children_of(instance.pid());
        REQUIRE(workers.size() == 2);
        // SIGKILL: a death at any instant (an OOM kill); a SIGSEGV sent from outside is
        // deferred by ThreadSanitizer's signal handling, a plugin's own crash is not (the
        // workers-with-admin test crashes one that way).
        ::kill(workers.front(), SIGKILL);
        REQUIRE(instance.wait_for_log("died of SIGKILL", 10s));
        for (int r = 0; r < 20; ++r) t.run_round(true);
        REQUIRE(instance.wait_for_log("serving generation 2", 10s));  // the new worker
        CHECK(f.status(i)["workers"].size() == 2);
    }
    for (int i = 0; i < 50; ++i) t.run_round(true);

    // A graceful stop: /healthz says 503 for shutdown_delay_ms, HAProxy moves traffic away.
    auto& leaving = *f.instances[2];
    leaving.signal(SIGTERM);
    std::optional<int> stopped;
    for (int i = 0; i < 20000 && !(stopped = leaving.wait_exit(0ms)); ++i) t.run_round(true);
    CHECK(stopped == 0);
    for (int i = 0; i < 50; ++i) t.run_round(true);

    MESSAGE("fleet: " << t.requests << " requests, " << t.failures << " failed, " << t.resent
                      << " line requests sent again after a connection closed between requests");
    CHECK_MESSAGE(t.failures == 0, t.first_failure);
    CHECK(t.old_prefix_after_rollout == 0);
    CHECK(t.requests > 16 * 150);
    CHECK(leaving.log().find("draining for shutdown_delay_ms") != std::string::npos);
}

TEST_CASE("fleet: a rollout stops at the first instance that refuses, the rest untouched") {
    if (!std::filesystem::exists("/usr/bin/curl")) {
        return skip_test("curl is not installed (apt-get install curl)");
    }
    fleet f{3};
    // Without the token the first instance answers 401 and the rollout says what to pass.
    const auto no_token =
        run_program("/bin/sh", {(deploy / "rollout").string(), f.ports[0].admin_endpoint()});
    CHECK(no_token.status == 1);
    CHECK_MESSAGE(no_token.output.find("HTTP 401): pass --token-file FILE") != std::string::npos,
                  no_token.output);
    f.write(0, "Howdy, ");
    std::ofstream{f.configs[1]} << "{ \"plugins\": ";  // a broken config on the second
    f.write(2, "Howdy, ");
    const auto r = run_program("/bin/sh", f.rollout_args());
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("stopped at " + f.ports[1].admin_endpoint() +
                                ": reload refused (HTTP 409)") != std::string::npos,
                  r.output);
    CHECK_MESSAGE(r.output.find(f.configs[1].string()) != std::string::npos, r.output);
    CHECK(f.status(0)["generation"] == 2);
    CHECK(f.status(1)["generation"] == 1);
    CHECK(f.status(2)["generation"] == 1);  // never asked
    CHECK(ask(f.ports[2].line, "x") == "Hello, x");
}

TEST_CASE(
    "fleet: rollout --canary stops after a canary rolled back, and takes a promoted one to all") {
    if (!std::filesystem::exists(haproxy)) {
        return skip_test("haproxy is not installed (apt-get install haproxy)");
    }
    // Small figures, so that the first instance's tenth of the traffic decides in seconds.
    fleet f{3, R"("canary": { "min_requests": 20, "min_duration_ms": 1000,
                              "max_duration_ms": 60000 })"};
    balancer front{f};
    traffic t = front.clients();
    for (int i = 0; i < 20; ++i) t.run_round(false);
    auto rollout_args = f.rollout_args();
    rollout_args.insert(rollout_args.begin() + 1, {"--canary", "10"});
    const auto roll = [&] {
        plugd_process rollout{"/bin/sh", rollout_args};
        std::optional<int> done;
        for (int i = 0; i < 20000 && !(done = rollout.wait_exit(0ms)); ++i) t.run_round(false);
        return std::make_pair(done, rollout.log());
    };

    // A version 50 ms slow: its p99 rolls it back on the first instance; the others are
    // never asked, and nothing failed.
    for (std::size_t i = 0; i < 3; ++i)
        f.write_greeting(i, prefixed("Hello, ") + ", \"delay_ms\": 50");
    auto [status, log] = roll();
    INFO(log);
    CHECK(status == 1);
    CHECK(log.find("rollout: stopped at " + f.ports[0].admin_endpoint() +
                   ": canary generation 2 rolled back after ") != std::string::npos);
    CHECK(log.find("(bound 1.5x)") != std::string::npos);
    if (const auto at = log.find("canary generation 2 rolled back"); at != std::string::npos)
        MESSAGE("fleet canary, first rollout: " << log.substr(at, log.find('\n', at) - at));
    CHECK(log.find("the instances after it were not touched") != std::string::npos);
    CHECK(f.status(0)["generation"] == 1);
    CHECK(f.status(0)["canary"]["state"] == "rolled_back");
    CHECK(f.status(1)["generation"] == 1);
    CHECK(f.status(2)["generation"] == 1);
    CHECK_FALSE(f.status(1).contains("canary"));

    // A new prefix: promoted on the first, then reloaded on the other two.
    for (std::size_t i = 0; i < 3; ++i) f.write(i, "Howdy, ");
    std::tie(status, log) = roll();
    CHECK(status == 0);
    CHECK(log.find(f.ports[0].admin_endpoint() + ": canary generation 3 promoted after ") !=
          std::string::npos);
    CHECK(log.find("all 3 instances reloaded") != std::string::npos);
    CHECK(f.status(0)["generation"] == 3);
    CHECK(f.status(1)["generation"] == 2);
    CHECK(f.status(2)["generation"] == 2);
    for (int i = 0; i < 20; ++i) t.run_round(true);
    MESSAGE("fleet canary: " << t.requests << " requests, " << t.failures << " failed");
    CHECK_MESSAGE(t.failures == 0, t.first_failure);
    CHECK(t.old_prefix_after_rollout == 0);
}
