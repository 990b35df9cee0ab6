// Routes and chains on the real plugd: which route a request takes, what filters do to it,
// and that a reload swaps a whole composition at once.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "line_client.hpp"
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
