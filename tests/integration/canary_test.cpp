// Canary reloads through the real plugd: a share of new requests goes to the new version,
// plugd judges both sides on the same traffic and promotes or rolls the canary back by
// itself (or when told), and reports it in the reload outcome, the log and /status.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "metric_samples.hpp"
#include "plugd_process.hpp"
#include "websocket_frames.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

// A plugd serving a copy of a test plugin (`first`, by default echo: v1) on a listener of
// `listener_framing`, with an admin endpoint and the given `canary` settings; tests install
// the next build (`next`, by default echo_v2) and reload.
struct canary_server {
    explicit canary_server(const std::string& plugin_config, const std::string& canary,
                           std::string listener_framing = "line", const std::string& first = "echo",
                           std::string next = "echo_v2")
        : plugins{tmp.path() / "plugins"},
          canary_settings{canary},
          framing{std::move(listener_framing)},
          next_build{std::move(next)} {
        std::filesystem::create_directory(plugins);
        install_plugin(test_plugin_dir() / (first + ".so"), plugins, "p.so");
        write_config(plugin_config);
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        port = process->port("main");
        admin = process->admin_port();
        REQUIRE(process->wait_for_log("serving generation 1"));
    }

    void write_config(const std::string& plugin_config) {
        cfg = tmp.write("server.json",
                        R"({ "threads": 2, "plugin_dir": ")" + plugins.string() +
                            R"(", "plugins": { "p": { "file": "p", "config": )" + plugin_config +
                            R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1",
                            "port": 0, "plugin": "p", "framing": ")" +
                            framing + R"(" } ],
                            "admin": { "address": "127.0.0.1", "port": 0 }, "canary": )" +
                            canary_settings + " }");
    }

    // The new version: the next build with `plugin_config`.
    void stage(const std::string& plugin_config) {
        install_plugin(test_plugin_dir() / (next_build + ".so"), plugins, "p.so");
        write_config(plugin_config);
    }

    run_result plugd_s(std::vector<std::string> args, milliseconds timeout = 60s) {
        args.insert(args.begin(), "-s");
        args.push_back("-c");
        args.push_back(cfg.string());
        return run_plugd(std::move(args), timeout);
    }

    json status() {
        auto r = http_request(admin, "GET", "/status");
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return json::parse(r->body);
    }

    temp_dir tmp;
    std::filesystem::path plugins;
    std::string canary_settings;
    std::string framing;
    std::string next_build;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0, admin = 0;
};

// Keep-alive line clients sending requests back to back until stopped, counting the
// replies by version.
struct steady_load {
    steady_load(std::uint16_t port, int clients) {
        for (int i = 0; i < clients; ++i) {
            threads.emplace_back([this, port, i] {
                try {
                    line_client c{port};
                    for (long n = 0; !stop; ++n) {
                        c.send(std::to_string(i) + "-" + std::to_string(n) + "\n");
                        const auto reply = c.read_line();
                        if (!reply) {
                            ++lost;
                            return;
                        }
                        ++(reply->starts_with("v1:")        ? v1
                           : reply->starts_with("v2:")      ? v2
                           : *reply == "ERR internal error" ? failed
                                                            : other);
                    }
                } catch (const std::exception&) {
                    ++lost;
                }
            });
        }
    }
    ~steady_load() { finish(); }
    void finish() {
        stop = true;
        for (auto& t : threads)
            if (t.joinable()) t.join();
    }
    long answered() const { return v1 + v2 + failed + other; }
    // Waits (bounded) until `n` more requests were answered than now.
    bool advance(long n) {
        const long target = answered() + n;
        for (int i = 0; i < 1000 && answered() < target; ++i) std::this_thread::sleep_for(10ms);
        return answered() >= target;
    }

    std::atomic<bool> stop{false};
    std::atomic<long> v1{0}, v2{0}, failed{0}, other{0}, lost{0};
    std::vector<std::thread> threads;
};

// The canary's requests and seconds in an outcome line ("... after 1,204 requests in 3.1 s").
struct outcome_figures {
    long requests = -1;
    double seconds = -1;
};
outcome_figures figures_of(const std::string& output, const std::string& verdict) {
    const std::regex line{"canary generation [0-9]+ " + verdict +
                          " after ([0-9,]+) requests in ([0-9.]+) s"};
    std::smatch m;
    if (!std::regex_search(output, m, line)) return {};
    std::string digits = m[1];
    std::erase(digits, ',');
    return {std::stol(digits), std::stod(m[2])};
}

// A client connected from `address` (any of 127.0.0.0/8 is this machine): a sticky canary
// sees another client at each address.
line_client connect_from(const std::string& address, std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, address.c_str(), &from.sin_addr) == 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    return line_client::adopt(fd);
}

// A sticky split: each client (an address, a user, a session: the key) saw one version
// only (`sides`: the versions each saw), and both versions had clients.
void each_on_one_side(const std::map<std::string, std::set<std::string>>& sides) {
    std::set<std::string> versions;
    for (const auto& [client, seen] : sides) {
        CHECK_MESSAGE(seen.size() == 1, client << " saw both versions");
        versions.insert(seen.begin(), seen.end());
    }
    CHECK(versions == std::set<std::string>{"v1", "v2"});
}

// Every one of `n` requests, on new connections and on one kept open, answered by `version`.
void all_answered_by(std::uint16_t port, const std::string& version, int n) {
    line_client kept{port};
    for (int i = 0; i < n; ++i) {
        CHECK(ask(port, "new") == version + ":new");
        kept.send("kept\n");
        CHECK(kept.read_line() == version + ":kept");
    }
}

}  // namespace

TEST_CASE(
    "canary: a version failing 30 percent at 20 percent is rolled back, then the old one answers "
    "all") {
    canary_server server{
        R"({ "delay_ms": 1 })",
        R"({ "min_requests": 300, "min_duration_ms": 20000, "max_duration_ms": 60000 })"};
    steady_load load{server.port, 4};
    REQUIRE(load.advance(200));
    server.stage(R"({ "delay_ms": 1, "fail_percent": 30 })");
    const auto r = server.plugd_s({"reload", "--canary", "20", "--wait"});
    load.finish();
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("plugd: canary: generation 2 takes 20% of new requests, next to "
                        "generation 1; judged on plugin p") != std::string::npos);
    const auto rolled = figures_of(r.output, "rolled back");
    REQUIRE(rolled.requests > 0);
    CHECK(r.output.find("(bounds 2.0x and 1.0%)") != std::string::npos);
    // Decided on the evidence, long before min_requests or min_duration_ms.
    CHECK(rolled.requests < 300);
    CHECK(rolled.seconds < 20);
    // Every failure a client saw was a request the canary got before its verdict.
    CHECK(load.failed > 0);
    CHECK(load.failed <= rolled.requests);
    CHECK(load.other == 0);
    CHECK(load.lost == 0);
    MESSAGE("rolled back: " << r.output.substr(r.output.rfind("plugd: canary generation"))
                            << "clients saw " << load.v1.load() << " v1, " << load.v2.load()
                            << " v2, " << load.failed.load() << " failed");
    all_answered_by(server.port, "v1", 100);
    const json s = server.status();
    CHECK(s["generation"] == 1);
    CHECK(s["canary"]["state"] == "rolled_back");
    CHECK(s["canary"]["instances"]["p"]["canary"]["errors"] > 0);
    CHECK(server.process->wait_for_log("plugin p generation 2: unloaded after draining"));
    CHECK(server.process->count_log("canary generation 2 rolled back after") == 1);
}

TEST_CASE(
    "canary: a good version is promoted after min_requests and min_duration_ms, then answers all") {
    // Handler times of 20 ms, so that a p99 compares the versions, not the machine's noise.
    canary_server server{
        R"({ "delay_ms": 20 })",
        R"({ "min_requests": 200, "min_duration_ms": 1500, "max_duration_ms": 60000 })"};
    steady_load load{server.port, 8};
    REQUIRE(load.advance(100));
    server.stage(R"({ "delay_ms": 20 })");
    const auto r = server.plugd_s({"reload", "--canary", "50", "--wait"});
    load.finish();
    INFO(r.output);
    CHECK(r.status == 0);
    const auto promoted = figures_of(r.output, "promoted");
    CHECK(promoted.requests >= 200);
    CHECK(promoted.seconds >= 1.5);
    CHECK(r.output.find("errors 0.0% vs 0.0%, p99 ") != std::string::npos);
    CHECK(load.failed == 0);
    CHECK(load.lost == 0);
    CHECK(load.v2 > 0);
    MESSAGE("promoted: " << r.output.substr(r.output.rfind("plugd: canary generation")));
    all_answered_by(server.port, "v2", 50);
    const json s = server.status();
    CHECK(s["generation"] == 2);
    CHECK(s["canary"]["state"] == "promoted");
    CHECK(server.process->wait_for_log("plugin p generation 1: unloaded after draining"));
}

TEST_CASE("canary: a version 3x slower is rolled back on its p99 with no failed request") {
    canary_server server{
        R"({ "delay_ms": 10 })",
        R"({ "min_requests": 100, "min_duration_ms": 30000, "max_duration_ms": 60000 })"};
    steady_load load{server.port, 8};
    REQUIRE(load.advance(100));
    server.stage(R"({ "delay_ms": 30 })");
    const auto r = server.plugd_s({"reload", "--canary", "50", "--wait"});
    load.finish();
    INFO(r.output);
    CHECK(r.status == 1);
    const auto rolled = figures_of(r.output, "rolled back");
    CHECK(rolled.requests >= 100);
    CHECK(rolled.seconds < 30);  // on the p99, not at max_duration_ms
    std::smatch p99;
    REQUIRE(std::regex_search(r.output, p99,
                              std::regex{"p99 ([0-9.]+) ms vs ([0-9.]+) ms \\(bound 1\\.5x\\)"}));
    CHECK(std::stod(p99[1]) / std::stod(p99[2]) > 1.5);  // about 3x: 30 ms against 10
    CHECK(load.failed == 0);
    CHECK(load.other == 0);
    CHECK(load.lost == 0);
    MESSAGE("rolled back: " << r.output.substr(r.output.rfind("plugd: canary generation")));
    all_answered_by(server.port, "v1", 20);
}

TEST_CASE("canary: sticky by peer, each client address stays on one side") {
    // Undecided for the test's length: only the split is looked at, then it is rolled back
    // by hand.
    canary_server server{"{}", R"({ "sticky": "peer", "min_requests": 1000000,
                                    "min_duration_ms": 500000, "max_duration_ms": 600000 })"};
    server.stage("{}");
    auto started = http_request(server.admin, "POST", "/reload?canary=50");
    REQUIRE(started);
    INFO(started->body);
    REQUIRE(started->status == 200);
    CHECK(json::parse(started->body)["canary_generation"] == 2);
    std::map<std::string, std::set<std::string>> sides;  // address -> versions seen
    for (int a = 2; a <= 41; ++a) {
        const std::string address = "127.0.0." + std::to_string(a);
        for (int connection = 0; connection < 5; ++connection) {
            line_client c = connect_from(address, server.port);
            for (int i = 0; i < 2; ++i) {
                c.send("x\n");
                const auto reply = c.read_line();
                REQUIRE(reply);
                sides[address].insert(reply->substr(0, 2));
            }
        }
    }
    each_on_one_side(sides);

    const json s = server.status();
    CHECK(s["canary"]["state"] == "running");
    CHECK(s["canary"]["sticky"] == "peer");
    CHECK(s["canary"]["instances"]["p"]["canary"]["requests"].get<long>() +
              s["canary"]["instances"]["p"]["serving"]["requests"].get<long>() ==
          400);
    CHECK(s["plugins"]["p"]["canary"]["generation"] == 2);
    const auto m = scrape_metrics(server.admin);
    CHECK(m.at("plugd_canary_generation") == 2);
    CHECK(m.at(R"(plugd_requests_total{listener="main",plugin="p",generation="1"})") +
              m.at(R"(plugd_requests_total{listener="main",plugin="p",generation="2"})") ==
          400);

    auto rolled = http_request(server.admin, "POST", "/rollback");
    REQUIRE(rolled);
    INFO(rolled->body);
    CHECK(rolled->status == 200);
    CHECK(json::parse(rolled->body)["message"].get<std::string>().starts_with(
        "canary generation 2 rolled back by hand after "));
    all_answered_by(server.port, "v1", 20);
    CHECK(scrape_metrics(server.admin).at("plugd_canary_generation") == 0);
}

TEST_CASE("canary: sticky by a request header, each user stays on one side over HTTP") {
    canary_server server{"{}",
                         R"({ "sticky": "X-User-Id", "min_requests": 1000000,
                              "min_duration_ms": 500000, "max_duration_ms": 600000 })",
                         "http"};
    server.stage("{}");
    const auto r = server.plugd_s({"reload", "--canary", "50"});
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("(sticky by header X-User-Id)") != std::string::npos);
    // Every user's requests, each on a connection of its own (so the client's address, the
    // same for all, decides nothing), and then on one kept-alive connection.
    std::map<std::string, std::set<std::string>> sides;  // user -> versions seen
    const auto get = [&](line_client& c, const std::string& user) {
        c.send("GET /hi HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-Id: " + user + "\r\n\r\n");
        const auto response = read_response(c);
        REQUIRE(response);
        REQUIRE(response->status == 200);
        sides[user].insert(response->body.substr(0, 2));
    };
    for (int u = 0; u < 40; ++u) {
        const std::string user = "user-" + std::to_string(u);
        for (int i = 0; i < 3; ++i) {
            line_client c{server.port};
            get(c, user);
        }
    }
    line_client kept{server.port};
    for (int u = 0; u < 40; ++u) get(kept, "user-" + std::to_string(u));
    each_on_one_side(sides);
    const json s = server.status();
    CHECK(s["canary"]["sticky"] == "header");
    CHECK(s["canary"]["sticky_header"] == "X-User-Id");
    CHECK(server.plugd_s({"rollback"}).status == 0);
}

TEST_CASE("canary: a WebSocket session stays on the side its upgrade went to, for its life") {
    canary_server server{"{}",
                         R"({ "min_requests": 1000000, "min_duration_ms": 500000,
                              "max_duration_ms": 600000 })",
                         "http", "ws_chat", "ws_chat_v2"};
    line_client listener = upgrade(server.port, "/");  // before the canary: v1's
    server.stage("{}");
    const auto r = server.plugd_s({"reload", "--canary", "50"});
    INFO(r.output);
    REQUIRE(r.status == 0);
    // Sessions upgraded during the canary; each relays its messages through its version,
    // which tags them ("v1:" or "v2:") on their way to the listener.
    constexpr int sessions = 24, rounds = 3;
    std::vector<line_client> talkers;
    for (int i = 0; i < sessions; ++i) talkers.push_back(upgrade(server.port, "/"));
    std::map<std::string, std::set<std::string>> sides;  // session -> tags its messages got
    for (int round = 0; round < rounds; ++round) {
        for (int i = 0; i < sessions; ++i)
            talkers[i].send(client_frame(0x1, std::to_string(i) + "-" + std::to_string(round)));
        for (int i = 0; i < sessions; ++i) {
            const auto f = read_frame(listener);
            REQUIRE(f);
            REQUIRE(f->opcode == 0x1);
            const auto dash = f->payload.find('-');
            REQUIRE(dash != std::string::npos);
            sides[f->payload.substr(3, dash - 3)].insert(f->payload.substr(0, 2));
        }
    }
    CHECK(sides.size() == sessions);
    each_on_one_side(sides);
    CHECK(server.plugd_s({"rollback"}).status == 0);
}

TEST_CASE(
    "canary: a reload while one runs is refused with what to do, and promote ends it by hand") {
    canary_server server{"{}", R"({ "min_requests": 1000000, "min_duration_ms": 500000,
                                    "max_duration_ms": 600000 })"};
    server.stage("{}");
    auto r = server.plugd_s({"reload", "--canary", "10"});
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("plugd: canary: generation 2 takes 10% of new requests") !=
          std::string::npos);

    r = server.plugd_s({"reload"});
    CHECK(r.status == 1);
    CHECK(r.output.find("plugd: reload failed, still serving generation 1: canary generation 2 "
                        "runs (10% of new requests, for ") != std::string::npos);
    CHECK(r.output.find("promote it (plugd -s promote, POST /promote) or roll it back (plugd -s "
                        "rollback, POST /rollback) first, then reload") != std::string::npos);
    auto refused = http_request(server.admin, "POST", "/reload?canary=30");
    REQUIRE(refused);
    CHECK(refused->status == 409);

    r = server.plugd_s({"promote"});
    CHECK(r.status == 0);
    CHECK(r.output.find("plugd: canary generation 2 promoted by hand after ") != std::string::npos);
    all_answered_by(server.port, "v2", 20);

    r = server.plugd_s({"rollback"});
    CHECK(r.status == 1);
    CHECK(r.output.find("plugd: rollback refused: no canary runs: nothing to roll back (the last "
                        "one, canary generation 2 promoted by hand after ") != std::string::npos);
    // A reload goes through again, as generation 3.
    r = server.plugd_s({"reload"});
    CHECK(r.status == 0);
    CHECK(r.output.find("plugd: reload: generation 3 in ") != std::string::npos);
}

TEST_CASE(
    "canary: a canary reload that changes more than plugin instances is refused before it loads") {
    canary_server server{"{}", "{}"};
    // A new limit is not something both sides of a canary could differ in.
    std::string text = R"({ "threads": 2, "plugin_dir": ")" + server.plugins.string() +
                       R"(", "plugins": { "p": { "file": "p", "config": { "delay_ms": 1 } } },
                       "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0,
                       "plugin": "p", "limits": { "idle_timeout_ms": 1000 } } ],
                       "admin": { "address": "127.0.0.1", "port": 0 } })";
    server.tmp.write("server.json", text);
    auto r = server.plugd_s({"reload", "--canary", "20"});
    CHECK(r.status == 1);
    CHECK(r.output.find("server.json: /listeners/0: changed: a canary reload changes plugin "
                        "instances only") != std::string::npos);
    // Nothing changed at all: nothing to compare.
    server.write_config("{}");
    r = server.plugd_s({"reload", "--canary", "20"});
    CHECK(r.status == 1);
    CHECK(r.output.find("/plugins: no plugin instance changed") != std::string::npos);
    auto bad = http_request(server.admin, "POST", "/reload?canary=100");
    REQUIRE(bad);
    CHECK(bad->status == 400);
    CHECK(bad->body.find("expected a percentage from 1 to 99") != std::string::npos);
    CHECK(ask(server.port, "still") == "v1:still");
}

TEST_CASE("canary: on a raw listener each new connection goes to one side for its whole life") {
    canary_server server{"{}", R"({ "min_requests": 1000000, "min_duration_ms": 500000,
                                    "max_duration_ms": 600000 })",
                         "raw"};
    server.stage("{}");
    const auto r = server.plugd_s({"reload", "--canary", "50"});
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::set<std::string> versions;
    for (int connection = 0; connection < 40; ++connection) {
        line_client c{server.port};
        std::set<std::string> seen;
        for (int i = 0; i < 3; ++i) {
            c.send("x\n");
            const auto reply = c.read_line();
            REQUIRE(reply);
            seen.insert(reply->substr(0, 2));
        }
        CHECK(seen.size() == 1);
        versions.insert(seen.begin(), seen.end());
    }
    CHECK(versions == std::set<std::string>{"v1", "v2"});
    // A connection counts once, as a request of its side, when it ends.
    long counted = 0;
    for (int i = 0; i < 500 && counted < 40; ++i) {
        const json s = server.status();
        counted = s["canary"]["instances"]["p"]["canary"]["requests"].get<long>() +
                  s["canary"]["instances"]["p"]["serving"]["requests"].get<long>();
        if (counted < 40) std::this_thread::sleep_for(10ms);
    }
    CHECK(counted == 40);
    CHECK(server.plugd_s({"rollback"}).status == 0);
}

namespace {

// Keep-alive line clients against a master's workers, which a crash may close: a client
// whose connection ends opens another, and counts the request it lost.
struct reconnecting_load {
    reconnecting_load(std::uint16_t port, int clients) {
        for (int i = 0; i < clients; ++i) {
            threads.emplace_back([this, port, i] {
                for (long n = 0; !stop;) {
                    try {
                        line_client c{port};
                        for (; !stop; ++n) {
                            c.send(std::to_string(i) + "-" + std::to_string(n) + "\n");
                            const auto reply = c.read_line();
                            if (!reply) {
                                ++lost;
                                break;
                            }
                            ++(reply->starts_with("faulty:") ? answered : other);
                        }
                    } catch (const std::exception&) {
                        ++lost;
                    }
                }
            });
        }
    }
    ~reconnecting_load() { finish(); }
    // Waits (bounded) until `n` more requests were answered than now.
    bool advance_answered(long n) {
        const long target = answered + n;
        for (int i = 0; i < 1000 && answered < target; ++i) std::this_thread::sleep_for(10ms);
        return answered >= target;
    }
    void finish() {
        stop = true;
        for (auto& t : threads)
            if (t.joinable()) t.join();
    }
    std::atomic<bool> stop{false};
    std::atomic<long> answered{0}, other{0}, lost{0};
    std::vector<std::thread> threads;
};

}  // namespace

TEST_CASE(
    "canary: with workers, a version crashing on 10 percent is rolled back and its crashes count "
    "as errors") {
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "faulty.so", plugins, "p.so");
    const auto config = [&](const std::string& plugin_config) {
        return tmp.write("server.json",
                         R"({ "workers": 2, "threads": 1, "plugin_dir": ")" + plugins.string() +
                             R"(", "plugins": { "p": { "file": "p", "config": )" + plugin_config +
                             R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1",
                             "port": 0, "plugin": "p" } ],
                             "admin": { "address": "127.0.0.1", "port": 0 },
                             "canary": { "min_requests": 300, "min_duration_ms": 4000,
                                         "max_duration_ms": 60000 } })");
    };
    // (min_duration_ms: long enough that the good canary still runs when the plain reload
    // below asks, however slow the machine or the build is.)
    const auto cfg = config("{}");
    plugd_process master{{"-c", cfg.string()}};
    const auto port = master.port("main");
    const auto admin = master.admin_port();
    REQUIRE(master.wait_for_log("serving generation 1", 10s, 2));
    const auto plugd_s = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "-s");
        args.push_back("-c");
        args.push_back(cfg.string());
        return run_plugd(std::move(args), 60s);
    };

    reconnecting_load load{port, 4};
    config(R"({ "crash_percent": 10 })");
    auto r = plugd_s({"reload", "--canary", "20", "--wait"});
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("; in each of the 2 workers, judged by the master from their figures "
                        "summed") != std::string::npos);
    const auto rolled = figures_of(r.output, "rolled back");
    REQUIRE(rolled.requests > 0);
    std::smatch errors;
    REQUIRE(std::regex_search(r.output, errors, std::regex{"errors ([0-9.]+)% vs 0.0%"}));
    CHECK(std::stod(errors[1]) >= 5);  // the crashes, one request each
    CHECK(master.count_log("died of SIGSEGV") >= 1);
    MESSAGE("with workers: " << r.output.substr(r.output.rfind("plugd: canary generation")));
    auto status = json::parse(http_request(admin, "GET", "/status")->body);
    CHECK(status["canary"]["state"] == "rolled_back");
    CHECK(status["canary"]["instances"]["p"]["canary"]["errors"].get<long>() > 0);
    CHECK(status["generation"] == 1);

    // A good one: promoted in every worker, and a reload while it runs is refused.
    config(R"({ "crash_percent": 0 })");
    r = plugd_s({"reload", "--canary", "50"});
    CHECK(r.status == 0);
    r = plugd_s({"reload"});
    CHECK(r.status == 1);
    CHECK(r.output.find("canary generation 3 runs (50% of new requests)") != std::string::npos);
    bool promoted = false;
    for (int i = 0; i < 1000 && !promoted; ++i) {
        status = json::parse(http_request(admin, "GET", "/status")->body);
        promoted = status["canary"]["state"] == "promoted";
        if (!promoted) std::this_thread::sleep_for(20ms);
    }
    REQUIRE(promoted);
    CHECK(status["generation"] == 3);
    CHECK(status["canary"]["outcome"].get<std::string>().starts_with(
        "canary generation 3 promoted after "));
    bool every_worker = false;
    for (int i = 0; i < 500 && !every_worker; ++i) {
        status = json::parse(http_request(admin, "GET", "/status")->body);
        every_worker = true;
        for (const auto& w : status["workers"]) every_worker = every_worker && w["generation"] == 3;
        if (!every_worker) std::this_thread::sleep_for(20ms);
    }
    CHECK(every_worker);
    const long lost_before = load.lost;
    CHECK(load.advance_answered(500));
    load.finish();
    CHECK(load.lost == lost_before);  // no crash since: the crashing version is gone
    CHECK(load.other == 0);
}
