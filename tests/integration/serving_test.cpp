// Serving: the real plugd over loopback, in line and oneshot framing, with many clients.
#include <doctest/doctest.h>

#include <poll.h>

#include <chrono>
#include <string>
#include <vector>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

using served = one_listener_server;

}  // namespace

TEST_CASE("greeting answers Hello, <message> through the loaded plugin") {
    served s{"greeting", "{}", "line", "{}", bundled_plugin_dir()};
    line_client c{s.port};
    c.send("world\n");
    CHECK(c.read_line() == "Hello, world");
}

TEST_CASE("greeting's prefix comes from its config") {
    served s{"greeting", R"({ "prefix": "Bonjour, " })", "line", "{}", bundled_plugin_dir()};
    line_client c{s.port};
    c.send("monde\n");
    CHECK(c.read_line() == "Bonjour, monde");
}

TEST_CASE("two instances of one library serve side by side with their own configs") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json", R"({ "threads": 2, "plugin_dir": ")" + bundled_plugin_dir().string() + R"(",
        "plugins": { "en": { "file": "greeting", "config": { "prefix": "Hello, " } },
                     "fr": { "file": "greeting", "config": { "prefix": "Bonjour, " } } },
        "listeners": [ { "name": "en", "port": 0, "plugin": "en" },
                       { "name": "fr", "port": 0, "plugin": "fr" } ] })");
    plugd_process p{{"-c", cfg.string()}};
    line_client en{p.port("en")}, fr{p.port("fr")};
    en.send("world\n");
    fr.send("monde\n");
    CHECK(en.read_line() == "Hello, world");
    CHECK(fr.read_line() == "Bonjour, monde");
}

TEST_CASE("a plugin other than greeting is loaded the same way") {
    served s{"echo"};
    line_client c{s.port};
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");
}

TEST_CASE("a keep-alive connection answers pipelined requests in order") {
    served s{"echo"};
    line_client c{s.port};
    std::string burst;
    for (int i = 0; i < 100; ++i) burst += std::to_string(i) + "\r\n";
    c.send(burst);
    for (int i = 0; i < 100; ++i) REQUIRE(c.read_line() == "v1:" + std::to_string(i));
    c.send("\n");
    CHECK(c.read_line() == "v1:");
}

TEST_CASE("a request split over several packets is answered once whole") {
    served s{"echo"};
    line_client c{s.port};
    // Each part waits until the server has had time to read it alone and not answer.
    c.send("hel");
    CHECK_FALSE(c.read_line(100ms).has_value());
    c.send("lo");
    CHECK_FALSE(c.read_line(100ms).has_value());
    c.send("\n");
    CHECK(c.read_line() == "v1:hello");
}

TEST_CASE("a last line without newline is answered when the client half-closes") {
    served s{"echo"};
    line_client c{s.port};
    c.send("a\nb");
    c.shutdown_send();
    CHECK(c.read_to_eof() == "v1:a\nv1:b\n");
}

TEST_CASE("a half-closed client gets every reply, also past the output cap") {
    served s{"echo", "{}", "line", R"({ "max_output_bytes": 1024 })"};
    line_client c{s.port};
    std::string burst, expected;
    for (int i = 0; i < 500; ++i) {
        burst += std::to_string(i) + "\n";
        expected += "v1:" + std::to_string(i) + "\n";
    }
    c.send(burst);
    c.shutdown_send();
    CHECK(c.read_to_eof() == expected);
}

TEST_CASE("oneshot framing answers one read as-is and closes") {
    served s{"echo", "{}", "oneshot"};
    line_client c{s.port};
    c.send("a\nb\n");  // one read, two lines: one request, newlines and all
    CHECK(c.read_to_eof() == "v1:a\nb\n");
}

TEST_CASE("a line over max_request_bytes gets an error and the connection closes") {
    served s{"echo", "{}", "line", R"({ "max_request_bytes": 16 })"};
    line_client c{s.port};
    c.send("ok\n" + std::string(20'000, 'x'));
    CHECK(c.read_line() == "v1:ok");
    CHECK(c.read_line() == "ERR request too large");
    CHECK(c.read_to_eof() == "");
    CHECK(c.wait_closed(8s).has_value());  // closed for good, not only half-closed
}

TEST_CASE("an idle connection is closed after idle_timeout_ms") {
    served s{"echo", "{}", "line", R"({ "idle_timeout_ms": 200 })"};
    line_client c{s.port};
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");
    c.send("half a request");  // never completed: slowloris
    const auto start = std::chrono::steady_clock::now();
    CHECK(c.read_to_eof(5s) == "");
    CHECK(std::chrono::steady_clock::now() - start >= 150ms);
}

TEST_CASE("many concurrent clients are all answered correctly") {
    served s{"echo"};
    std::vector<line_client> clients;
    for (int i = 0; i < 100; ++i) clients.emplace_back(s.port);
    for (int round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < clients.size(); ++i) {
            clients[i].send(std::to_string(i) + "-" + std::to_string(round) + "\n");
        }
        for (std::size_t i = 0; i < clients.size(); ++i) {
            REQUIRE(clients[i].read_line() ==
                    "v1:" + std::to_string(i) + "-" + std::to_string(round));
        }
    }
}

TEST_CASE("200 clients waiting 500 ms each are served concurrently, not one by one") {
    served s{"greeting", R"({ "delay_ms": 500 })", "line", "{}", bundled_plugin_dir()};
    std::vector<line_client> clients;
    for (int i = 0; i < 200; ++i) clients.emplace_back(s.port);
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < clients.size(); ++i) clients[i].send(std::to_string(i) + "\n");
    for (std::size_t i = 0; i < clients.size(); ++i) {
        REQUIRE(clients[i].read_line(10s) == "Hello, " + std::to_string(i));
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    // Sequential service would take 100 s; concurrent takes one delay plus overhead.
    CHECK(elapsed >= 500ms);
    CHECK(elapsed < 5s);
}

TEST_CASE("a handler that throws costs only that request") {
    served s{"echo", R"({ "throw_on": "boom" })"};
    line_client c{s.port};
    c.send("boom\nafter\n");
    CHECK(c.read_line() == "ERR internal error");
    CHECK(c.read_line() == "v1:after");
    CHECK(s.process.wait_for_log("plugin p failed a request from 127.0.0.1:"));
    CHECK(s.process.wait_for_log(": asked to throw"));
}
