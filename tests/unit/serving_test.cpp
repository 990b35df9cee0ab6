// Serving inside the test process: a real shard serves each framing over socket pairs
// (serving_fixture), so the serving loop, its codecs and the sweeper's timeouts are tested
// without a plugd process. Every wait is a socket read with a deadline or a bounded poll of
// the shard's own state.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "serving_fixture.hpp"

namespace {

using namespace plugd::test;
using plugd::framing_kind;

served_listener with_framing(framing_kind framing) {
    served_listener l;
    l.framing = framing;
    return l;
}

bool logged(const serving_fixture& server, const std::string& text) {
    const auto lines = server.log_lines();
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& line) { return line.find(text) != line.npos; });
}

}  // namespace

TEST_CASE("serving: line requests pipelined in one write are answered in order in one write") {
    serving_fixture server;
    auto client = server.connect(pair_kind::records);  // a read here is a write there
    client.send("a\nb\nc\n");
    // The server read the three at once: their replies go out in one write.
    CHECK(client.read_available() == "Hello, a\nHello, b\nHello, c\n");
    client.send("d\n");
    CHECK(client.read_line() == "Hello, d");
}

TEST_CASE("serving: a request split across writes byte by byte is answered once it is whole") {
    auto framing = framing_kind::line;
    std::string request = "split\n";
    SUBCASE("line") {}
    SUBCASE("http") {
        framing = framing_kind::http;
        request = "GET /split HTTP/1.1\r\nHost: plugd\r\n\r\n";
    }
    serving_fixture server{with_framing(framing)};
    auto client = server.connect();
    for (std::size_t i = 0; i < request.size(); ++i) {
        CAPTURE(i);
        // Nothing is answered before the request is whole.
        REQUIRE_FALSE(client.read_available(0ms).has_value());
        client.send(request.substr(i, 1));
        server.wait_read_by_server(client);  // each byte in a read of its own
    }
    if (framing == framing_kind::line) {
        CHECK(client.read_line() == "Hello, split");
    } else {
        auto reply = read_response(client);
        REQUIRE(reply.has_value());
        CHECK(reply->status == 200);
        CHECK(reply->body == "Hello, split");
    }
}

TEST_CASE("serving: a line longer than max_request_bytes is refused and the connection closes") {
    served_listener l;
    l.limits.max_request_bytes = 16;
    serving_fixture server{l};
    auto client = server.connect();
    client.send(std::string(40, 'x') + "\n");
    CHECK(client.read_line() == "ERR request too large");
    CHECK(client.read_to_eof() == "");  // nothing else, and the end of the connection
    client.shutdown_send();             // the server's lingering close ends with the client's input
    CHECK(server.wait_open_connections(0));
}

TEST_CASE("serving: http keep-alive serves two requests on one connection then Connection: close") {
    serving_fixture server{with_framing(framing_kind::http)};
    auto client = server.connect();
    for (const std::string name : {"first", "second"}) {
        client.send("GET /" + name + " HTTP/1.1\r\nHost: plugd\r\n\r\n");
        auto reply = read_response(client);
        REQUIRE(reply.has_value());
        CHECK(reply->status == 200);
        CHECK(reply->body == "Hello, " + name);
        CHECK(reply->headers.count("connection") == 0);  // HTTP/1.1: kept open
    }
    CHECK(server.open_connections() == 1);
    client.send("GET /last HTTP/1.1\r\nHost: plugd\r\nConnection: close\r\n\r\n");
    auto last = read_response(client);
    REQUIRE(last.has_value());
    CHECK(last->body == "Hello, last");
    CHECK(last->headers["connection"] == "close");
    CHECK(client.read_to_eof() == "");
    CHECK(server.wait_open_connections(0));
}

TEST_CASE("serving: http Expect 100-continue is answered before the body is sent") {
    serving_fixture server{with_framing(framing_kind::http)};
    auto client = server.connect();
    client.send(
        "POST /greet HTTP/1.1\r\nHost: plugd\r\nExpect: 100-continue\r\n"
        "Content-Length: 5\r\n\r\n");
    auto go_on = read_response(client);
    REQUIRE(go_on.has_value());
    CHECK(go_on->status == 100);
    client.send("world");
    auto reply = read_response(client);
    REQUIRE(reply.has_value());
    CHECK(reply->status == 200);
    CHECK(reply->body == "Hello, world");
}

TEST_CASE(
    "serving: an http request not received whole within request_timeout_ms gets 408 and closes") {
    served_listener l = with_framing(framing_kind::http);
    l.limits.request_timeout = 200ms;  // the sweeper ticks every 25 ms
    l.limits.idle_timeout = l.limits.write_timeout = 10s;
    serving_fixture server{l};
    auto client = server.connect();
    const auto sent = std::chrono::steady_clock::now();
    client.send("GET /slow HTTP/1.1\r\nHost: plugd\r\n");  // no blank line: the head goes on
    auto reply = read_response(client);
    REQUIRE(reply.has_value());
    // The sweeper's ages are lower bounds: never before the timeout.
    CHECK(std::chrono::steady_clock::now() - sent >= l.limits.request_timeout);
    CHECK(reply->status == 408);
    CHECK(reply->headers["connection"] == "close");
    CHECK(client.read_to_eof() == "");
    CHECK(server.wait_open_connections(0));
    CHECK(logged(server, "did not send a whole request within request_timeout_ms"));
}

TEST_CASE("serving: a connection idle past a sweep parks and still answers its next request") {
    served_listener l;
    l.limits.request_timeout = 400ms;  // the sweeper ticks every 50 ms
    l.limits.idle_timeout = l.limits.write_timeout = 10s;
    serving_fixture server{l};
    auto client = server.connect();
    client.send("first\n");
    CHECK(client.read_line() == "Hello, first");
    // Its coroutine waits for the next request until a sweep finds it quiet and parks it.
    REQUIRE(server.wait_parked_connections(1));
    CHECK(server.open_connections() == 1);
    client.send("second\n");
    CHECK(client.read_line() == "Hello, second");
}

TEST_CASE("serving: oneshot answers what the first read brings and closes") {
    serving_fixture server{with_framing(framing_kind::oneshot)};
    auto client = server.connect();
    client.send("world");
    CHECK(client.read_to_eof() == "Hello, world");
    CHECK(server.wait_open_connections(0));
}

TEST_CASE("serving: raw hands the connection to the plugin's serve until the client closes") {
    served_listener l = with_framing(framing_kind::raw);
    l.plugin = test_plugin("echo");
    l.plugin_config = {{"banner", "welcome"}};  // sent by serve() alone, before any input
    serving_fixture server{l};
    auto client = server.connect();
    CHECK(client.read_line() == "welcome");
    client.send("one\ntwo\n");
    CHECK(client.read_line() == "v1:one");
    CHECK(client.read_line() == "v1:two");
    client.shutdown_send();  // serve() reads the end of input and returns
    CHECK(client.read_to_eof() == "");
    CHECK(server.wait_open_connections(0));
}
