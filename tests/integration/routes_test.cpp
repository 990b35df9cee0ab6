// Routes and chains on the real plugd: which route a request takes, what filters do to it,
// and that a reload swaps a whole composition at once.
#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "line_client.hpp"
#include "metric_samples.hpp"
#include "plugd_process.hpp"

using namespace plugd::test;
using namespace std::chrono_literals;

namespace {

// A server.json over the test plugins: `plugins` and `listeners` are the JSON bodies.
std::string config(const std::string& plugins, const std::string& listeners,
                   const std::string& extra = "") {
    return R"({ "plugin_dir": ")" + test_plugin_dir().string() + R"(", )" + extra +
           R"( "plugins": { )" + plugins + R"( }, "listeners": [ )" + listeners + " ] }";
}

// A request on a keep-alive connection, with optional extra header lines.
std::optional<http_response> get(line_client& c, const std::string& target,
                                 const std::string& fields = "",
                                 const std::string& method = "GET") {
    c.send(method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
    return read_response(c);
}

const std::string echo_plugins =
    R"("gate": { "file": "gate" }, "exact": { "file": "route_echo", "config": { "answer": "exact" } },
       "short": { "file": "route_echo", "config": { "answer": "short" } },
       "long": { "file": "route_echo", "config": { "answer": "long" } },
       "host": { "file": "route_echo", "config": { "answer": "host" } },
       "wild": { "file": "route_echo", "config": { "answer": "wild" } },
       "post": { "file": "route_echo", "config": { "answer": "post" } })";

}  // namespace

TEST_CASE("routes: exact before prefix, longest prefix, host before no host, then method") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json",
        config(echo_plugins, R"({ "name": "main", "port": 0, "framing": "http", "routes": [
            { "path": "/api/", "plugin": "short" },
            { "name": "quotes", "path": "/api/quotes/", "plugin": "long" },
            { "path": "/api/quotes/top", "plugin": "exact" },
            { "path": "/api/", "host": "api.example.com", "plugin": "host" },
            { "path": "/api/", "host": "*.example.com", "plugin": "wild" },
            { "path": "/api/quotes/", "methods": ["POST"], "plugin": "post" },
            { "path": "/only-get", "methods": ["GET"], "plugin": "exact" },
            { "path": "/only-get", "methods": ["DELETE"], "plugin": "short" } ] })"));
    plugd_process plugd{{"-c", cfg.string()}};
    line_client c{plugd.port()};

    auto r = get(c, "/api/quotes/top");
    REQUIRE(r);
    CHECK(r->body == "exact route=2 rest= message= token=");
    r = get(c, "/api/quotes/AAPL?x=1");
    REQUIRE(r);
    CHECK(r->body == "long route=quotes rest=AAPL message=AAPL?x=1 token=");
    r = get(c, "/api/orders/7");
    REQUIRE(r);
    CHECK(r->body == "short route=0 rest=orders/7 message=orders/7 token=");
    // Normalised before matching: "/api/x/../quotes/" is "/api/quotes/".
    r = get(c, "/api/x/../quotes/%41APL");
    REQUIRE(r);
    CHECK(r->body == "long route=quotes rest=AAPL message=AAPL token=");
    c.send("GET /api/quotes/AAPL HTTP/1.1\r\nHost: API.example.com:8080\r\n\r\n");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body.starts_with("host route=3 "));  // a host route beats a longer prefix
    c.send("GET /api/quotes/AAPL HTTP/1.1\r\nHost: eu.example.com\r\n\r\n");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body.starts_with("wild route=4 "));
    c.send("POST /api/quotes/AAPL HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "post route=5 rest=AAPL message=hi token=");

    r = get(c, "/nowhere");
    REQUIRE(r);
    CHECK(r->status == 404);
    r = get(c, "/only-get", "", "PUT");
    REQUIRE(r);
    CHECK(r->status == 405);
    CHECK(r->headers["allow"] == "DELETE, GET, HEAD");
    // GET routes take HEAD, answered without the content.
    c.send("HEAD /only-get HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto head = c.read_available();
    REQUIRE(head);
    CHECK(head->starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(head->ends_with("\r\n\r\n"));
    r = get(c, "/%zz");
    REQUIRE(r);
    CHECK(r->status == 400);
    r = get(c, "/api/quotes/top");  // the connection served on after 404, 405 and 400
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("a reload swaps a filter's config and its handler together: no request sees half") {
    temp_dir tmp;
    // Generation g: the gate lets token T through and the handler answers V. The gate
    // pauses before the rest of its chain runs, so reloads land inside requests.
    const auto write = [&](const std::string& token, const std::string& answer) {
        return tmp.write(
            "server.json",
            config(R"("gate": { "file": "gate", "config": { "delay_ms": 2, "token": ")" + token +
                       R"(" } }, "quotes": { "file": "route_echo", "config": { "answer": ")" +
                       answer + R"(" } })",
                   R"({ "name": "main", "port": 0, "framing": "http", "routes": [
                        { "name": "q", "path": "/q/", "chain": ["gate", "quotes"] } ] })"));
    };
    const auto cfg = write("A", "v1");
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1"));

    std::atomic<bool> stop{false};
    std::atomic<int> failed{0}, mixed{0}, seen_a{0}, seen_b{0}, refused{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 16; ++i) {
        clients.emplace_back([&, i] {
            line_client c{port};
            // Bounded: the reloads below end it long before.
            for (int n = 0; n < 200'000 && !stop.load(); ++n) {
                const char token = (n + i) % 2 == 0 ? 'A' : 'B';
                c.send("GET /q/x HTTP/1.1\r\nHost: x\r\nX-Token: " + std::string(1, token) +
                       "\r\n\r\n");
                auto r = read_response(c);
                if (!r) {
                    ++failed;
                    return;
                }
                if (r->status == 401) {
                    ++refused;
                    continue;
                }
                if (r->status != 200) {
                    ++failed;
                    continue;
                }
                // The handler's answer, and what the filter that passed it attached.
                if (r->body.starts_with("v1 ") && r->body.ends_with("token=A") &&
                    r->headers["x-gate"] == "A 200") {
                    ++seen_a;
                } else if (r->body.starts_with("v2 ") && r->body.ends_with("token=B") &&
                           r->headers["x-gate"] == "B 200") {
                    ++seen_b;
                } else {
                    ++mixed;
                }
            }
        });
    }
    for (int reload = 0; reload < 20; ++reload) {
        const bool to_b = reload % 2 == 0;
        write(to_b ? "B" : "A", to_b ? "v2" : "v1");
        const int a_before = seen_a.load(), b_before = seen_b.load();
        plugd.signal(SIGHUP);
        REQUIRE_MESSAGE(
            plugd.wait_for_log("reload: generation " + std::to_string(reload + 2) + " "),
            plugd.log());
        // Traffic on the new generation before the next reload (bounded wait).
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while ((to_b ? seen_b.load() <= b_before : seen_a.load() <= a_before) &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
    }
    stop = true;
    for (auto& t : clients) t.join();
    CHECK(failed.load() == 0);
    CHECK(mixed.load() == 0);
    CHECK(seen_a.load() > 0);
    CHECK(seen_b.load() > 0);
    CHECK(refused.load() > 0);  // the other token was refused by each generation
    MESSAGE("replies: " << seen_a.load() << " (A, v1), " << seen_b.load() << " (B, v2), "
                        << refused.load() << " refused by the gate");
}

TEST_CASE("max_in_flight: 50 concurrent 500 ms requests, 10 answered, 40 refused at once") {
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json",
                  config(R"("slow": { "file": "route_echo", "max_in_flight": 10,
                            "config": { "delay_ms": 500 } })",
                         R"({ "name": "main", "port": 0, "framing": "http", "plugin": "slow" })",
                         R"("admin": { "port": 0 },)"));
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t port = plugd.port();
    std::vector<line_client> clients;
    for (int i = 0; i < 50; ++i) clients.emplace_back(port);
    const auto sent = std::chrono::steady_clock::now();
    for (auto& c : clients) c.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    // When each connection's reply began to arrive: the refusals must not wait for a slot.
    std::vector<std::chrono::steady_clock::duration> arrived(clients.size());
    std::vector<bool> done(clients.size(), false);
    std::size_t left = clients.size();
    const auto deadline = sent + 10s;
    while (left > 0 && std::chrono::steady_clock::now() < deadline) {
        std::vector<pollfd> fds;
        for (std::size_t i = 0; i < clients.size(); ++i)
            if (!done[i]) fds.push_back({clients[i].fd(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
        const auto now = std::chrono::steady_clock::now();
        for (const auto& f : fds) {
            if (!(f.revents & POLLIN)) continue;
            for (std::size_t i = 0; i < clients.size(); ++i) {
                if (clients[i].fd() != f.fd || done[i]) continue;
                done[i] = true;
                arrived[i] = now - sent;
                --left;
            }
        }
    }
    REQUIRE(left == 0);
    int answered = 0, busy = 0;
    auto slowest_refusal = std::chrono::steady_clock::duration::zero();
    auto fastest_answer = std::chrono::steady_clock::duration::max();
    for (std::size_t i = 0; i < clients.size(); ++i) {
        const auto r = read_response(clients[i], 10s);
        REQUIRE(r);
        if (r->status == 200) {
            ++answered;
            fastest_answer = std::min(fastest_answer, arrived[i]);
        } else if (r->status == 503) {
            ++busy;
            slowest_refusal = std::max(slowest_refusal, arrived[i]);
        }
    }
    CHECK(answered == 10);
    CHECK(busy == 40);
    // Refused at once: every refusal came before the first answer (which waits 500 ms).
    CHECK(slowest_refusal < fastest_answer);
    CHECK(fastest_answer >= 500ms);
    MESSAGE("slowest refusal "
            << std::chrono::duration_cast<std::chrono::microseconds>(slowest_refusal).count()
            << " us after the requests were sent");
    // Counted as busy, logged once (then summed), naming the instance and the setting.
    CHECK(scrape_metrics(plugd.admin_port())
              .at(R"(plugd_request_errors_total{listener="main",plugin="slow",kind="busy"})") ==
          40);
    CHECK(plugd.wait_for_log("plugin slow is at its max_in_flight (10 requests at once)"));
    CHECK(plugd.count_log("is at its max_in_flight") <= 2);  // one line per thread at most
}
