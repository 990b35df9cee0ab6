// plugd-bench, the installed load generator, against the real plugd: it counts, checks
// every reply, and fails when a reply differs or the server is not there.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

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

// The JSON line of plugd-bench's output (its complaints on stderr may come before it).
nlohmann::json json_of(const run_result& r) {
    const auto at = r.output.starts_with('{') ? 0 : r.output.find("\n{") + 1;
    return nlohmann::json::parse(r.output.substr(at, r.output.find('\n', at) - at));
}

// A canned HTTP/1.1 server on a loopback port: every request head gets `reply` (a whole
// response), pipelined ones included; with `close_after_reply`, the connection is closed
// after each answer (a server that ends keep-alive connections, as nginx at a reload). One
// thread polls every socket, so no thread starts or ends while the test forks plugd-bench.
// Stops, and joins it, when destroyed.
class canned_http_server {
  public:
    explicit canned_http_server(std::string reply, bool close_after_reply = false)
        : reply_{std::move(reply)}, close_after_reply_{close_after_reply} {
        port = listener_.port;
        thread_ = std::thread{[this] { serve(); }};
    }
    ~canned_http_server() {
        stop_ = true;
        thread_.join();  // serve() looks at stop_ every 50 ms
    }
    std::uint16_t port = 0;

  private:
    struct client {
        int fd;
        std::string in;
    };
    void serve() {
        std::vector<client> clients;
        while (!stop_) {
            std::vector<pollfd> fds{{listener_.fd, POLLIN, 0}};
            for (const auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
            if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
            if (fds[0].revents & POLLIN) {
                const int fd = ::accept(listener_.fd, nullptr, nullptr);
                if (fd >= 0) clients.push_back({fd, {}});
            }
            for (std::size_t i = 1; i < fds.size(); ++i) {
                if (!fds[i].revents) continue;
                auto& c = clients[i - 1];
                if (!answer(c)) {
                    ::close(c.fd);
                    c.fd = -1;
                }
            }
            std::erase_if(clients, [](const client& c) { return c.fd < 0; });
        }
        for (const auto& c : clients) ::close(c.fd);
    }
    // Reads what came and answers every complete request head; false once the client left.
    bool answer(client& c) {
        char chunk[4096];
        const auto n = ::read(c.fd, chunk, sizeof chunk);
        if (n <= 0) return false;
        c.in.append(chunk, static_cast<std::size_t>(n));
        std::string out;
        for (auto end = c.in.find("\r\n\r\n"); end != std::string::npos;
             end = c.in.find("\r\n\r\n")) {
            out += reply_;
            c.in.erase(0, end + 4);
        }
        if (out.empty()) return true;
        return ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL) == ssize_t(out.size()) &&
               !close_after_reply_;
    }
    std::string reply_;
    bool close_after_reply_;
    loopback_listener listener_{64};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

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
    // Counted among the measured requests, never more (the warm-up's replies were counted
    // as mismatches but not as requests before); a warm-up-only mismatch still fails.
    r = bench({"--port", std::to_string(s.line), "--duration", "0.2", "--warmup", "0.2",
               "--pipeline", "4", "--expect", "Bonjour, world", "--json"});
    CHECK(r.status == 1);
    auto j = json_of(r);
    CHECK(j["mismatches"].get<long>() > 0);
    CHECK(j["mismatches"].get<long>() == j["requests"].get<long>());
    // The README's example, against greeting.
    r = bench({"--port", std::to_string(s.line), "--pipeline", "16", "--message", "ping",
               "--expect", "Hello, ping", "--json", "--duration", "0.2", "--warmup", "0"});
    CHECK_MESSAGE(r.status == 0, r.output);

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

TEST_CASE("plugd-bench --mode http checks every reply's status and body") {
    {
        canned_http_server ok{"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello, world"};
        auto r = bench({"--port", std::to_string(ok.port), "--mode", "http", "--connections", "2",
                        "--pipeline", "4", "--duration", "0.3", "--warmup", "0", "--json"});
        REQUIRE_MESSAGE(r.status == 0, r.output);
        CHECK(json_of(r)["requests"].get<long>() > 0);
        CHECK(json_of(r)["requests"].get<long>() % 4 == 0);
    }
    {
        canned_http_server wrong{"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nHello, moon"};
        auto r = bench({"--port", std::to_string(wrong.port), "--mode", "http", "--duration", "0.2",
                        "--warmup", "0"});
        CHECK(r.status == 1);
        CHECK(r.output.find("expected \"Hello, world\", got e.g. \"Hello, moon\"") !=
              std::string::npos);
    }
    {
        canned_http_server missing{"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"};
        auto r = bench({"--port", std::to_string(missing.port), "--mode", "http", "--duration",
                        "0.2", "--warmup", "0"});
        CHECK(r.status == 1);
        CHECK(r.output.find("HTTP status is not 200: HTTP/1.1 404 Not Found") != std::string::npos);
    }
}

TEST_CASE(
    "plugd-bench --reopen-closed opens again a connection the server closed between requests") {
    canned_http_server closing{"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello, world", true};
    const std::vector<std::string> load{"--port",        std::to_string(closing.port),
                                        "--mode",        "http",
                                        "--connections", "2",
                                        "--duration",    "0.3",
                                        "--warmup",      "0",
                                        "--json"};
    // Without it, the next request on a closed connection fails.
    auto r = bench(load);
    CHECK(r.status == 1);
    CHECK(json_of(r)["errors"].get<long>() > 0);
    auto reopening = load;
    reopening.push_back("--reopen-closed");
    r = bench(reopening);
    REQUIRE_MESSAGE(r.status == 0, r.output);
    const auto j = json_of(r);
    CHECK(j["errors"] == 0);
    CHECK(j["requests"].get<long>() > 0);
    // Every request after a connection's first found it closed.
    CHECK(j["reopened"].get<long>() >= j["requests"].get<long>() - 2);
}

TEST_CASE(
    "plugd-bench --server-pid reports the server's CPU per request and memory per connection") {
    greeting_server s;
    auto r = bench({"--port", std::to_string(s.line), "--connections", "4", "--idle", "200",
                    "--duration", "0.5", "--warmup", "0.3", "--server-pid",
                    std::to_string(s.process->pid()), "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    const auto j = json_of(r);
    CHECK(j["idle"] == 200);
    CHECK(j["server_cpu_us_per_request"].get<double>() > 0);
    CHECK(j["server_rss_kib"].get<long>() > 0);
    CHECK(j.contains("server_rss_per_connection_bytes"));
    r = bench({"--port", std::to_string(s.line), "--duration", "0.2", "--warmup", "0",
               "--server-pid", "999999999"});
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot read /proc/999999999/stat") != std::string::npos);
}

TEST_CASE("plugd-bench --websocket delivers every message to every subscriber of a room") {
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "example_chat.so", plugins, "chat.so");
    const auto cfg =
        tmp.write("server.json", R"({ "threads": 1, "plugin_dir": ")" + plugins.string() + R"(",
        "plugins": { "chat": { "file": "chat" } },
        "listeners": [ { "name": "web", "port": 0, "framing": "http",
                         "routes": [ { "path": "/room/", "plugin": "chat" } ] } ] })");
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t port = plugd.port("web");
    const auto r = bench({"--port", std::to_string(port), "--websocket", "/room/bench",
                          "--connections", "50", "--duration", "1", "--in-flight", "4",
                          "--server-pid", std::to_string(plugd.pid()), "--json"});
    INFO(r.output);
    REQUIRE(r.status == 0);
    const auto result = json_of(r);
    CHECK(result.at("errors") == 0);
    CHECK(result.at("mismatches") == 0);
    // plugd-bench fails the run when a message does not reach every subscriber (errors), or
    // reaches one out of order or changed (mismatches); at least one reached them all.
    CHECK(result.at("delivered").get<std::uint64_t>() >= 50);
    CHECK(result.at("server_rss_per_session_bytes").get<double>() > 0);
}
