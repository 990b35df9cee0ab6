// HTTP framing: the real plugd over loopback speaking HTTP/1.1 and 1.0, to plugins written
// for line framing (their message is the body, or the target without its '/').
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

// A running plugd with one http listener routed to `file`.
struct served : one_listener_server {
    served(const std::string& file, const std::string& config = "{}",
           const std::string& limits = "{}", const std::filesystem::path& dir = test_plugin_dir())
        : one_listener_server{file, config, "http", limits, dir} {}
};

const std::string get_world = "GET /world HTTP/1.1\r\nHost: x\r\n\r\n";

}  // namespace

TEST_CASE("http: greeting answers GET /world and a POSTed body with Hello, world") {
    served s{"greeting", "{}", "{}", bundled_plugin_dir()};
    line_client c{s.port};
    c.send(get_world);
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->headers["content-type"] == "text/plain");
    CHECK(r->body == "Hello, world");
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "Hello, world");
    c.send("GET /hello%20there%21 HTTP/1.1\r\nHost: x\r\n\r\n");  // URL-decoded
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "Hello, hello there!");
}

TEST_CASE("http: pipelined requests on one keep-alive connection are answered in order") {
    served s{"echo"};
    line_client c{s.port};
    std::string batch;
    for (int i = 0; i < 5; ++i)
        batch += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    c.send(batch);
    for (int i = 0; i < 5; ++i) {
        auto r = read_response(c);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "v1:r" + std::to_string(i));
        CHECK(r->headers.count("connection") == 0);  // kept open
    }
    c.send(get_world);  // still open
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "v1:world");
}

TEST_CASE("http: a chunked request body reaches the handler joined, and a split request waits") {
    served s{"echo"};
    line_client c{s.port};
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n");
    c.send("5\r\npedia\r\n0\r\n\r\n");
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "v1:wikipedia");
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    c.send("world");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "v1:helloworld");
}

TEST_CASE("http: Connection close and HTTP/1.0 close after the response, 1.0 keep-alive stays") {
    served s{"echo"};
    {
        line_client c{s.port};
        c.send(
            "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
        auto r = read_response(c);
        REQUIRE(r);
        CHECK(r->body == "v1:bye");
        CHECK(r->headers["connection"] == "close");
        CHECK(c.read_to_eof() == "");  // the pipelined request after it is not answered
    }
    {
        line_client c{s.port};
        c.send("GET /old HTTP/1.0\r\n\r\n");
        auto r = read_response(c);
        REQUIRE(r);
        CHECK(r->version == "HTTP/1.0");
        CHECK(r->body == "v1:old");
        CHECK(c.read_to_eof() == "");
    }
    {
        line_client c{s.port};
        c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        auto r = read_response(c);
        REQUIRE(r);
        CHECK(r->headers["connection"] == "keep-alive");
        c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        r = read_response(c);
        REQUIRE(r);
        CHECK(r->body == "v1:b");
    }
}

TEST_CASE("http: Expect 100-continue gets 100 Continue before the body is sent") {
    served s{"echo"};
    line_client c{s.port};
    c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    auto interim = read_response(c);
    REQUIRE(interim);
    CHECK(interim->status == 100);
    c.send("body");
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "v1:body");
}

TEST_CASE("http: oversized headers get 431, an oversized body 413, garbage 400, and each closes") {
    served s{"echo", "{}", R"({ "max_request_bytes": 1024 })"};
    const auto refused = [&](const std::string& bytes) {
        line_client c{s.port};
        c.send(bytes);
        auto r = read_response(c);
        if (!r) return 0;
        CHECK(r->headers["connection"] == "close");
        CHECK(c.read_to_eof(5s).has_value());
        return r->status;
    };
    CHECK(refused("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n") == 431);
    CHECK(refused("POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + std::string(100, 'b')) ==
          413);
    CHECK(refused("this is not http\r\n\r\n") == 400);
    CHECK(s.process.count_log("error") == 0);
    line_client c{s.port};  // and the server serves on
    c.send(get_world);
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "v1:world");
}

TEST_CASE("http: a handler that throws gets 500 and the connection stays, a timeout gets 504") {
    served s{"echo", R"({ "throw_on": "boom", "hang_on": "stuck" })",
             R"({ "request_timeout_ms": 300 })"};
    line_client c{s.port};
    c.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 500);
    c.send(get_world);
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    c.send("GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 504);
    CHECK(r->headers["connection"] == "close");
    CHECK(c.read_to_eof() == "");
}

TEST_CASE("http: the same plugin file serves a line listener and an http listener at once") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json", R"({ "threads": 1, "plugin_dir": ")" + bundled_plugin_dir().string() + R"(",
        "plugins": { "greeting": { "file": "greeting" } },
        "listeners": [
          { "name": "line", "address": "127.0.0.1", "port": 0, "plugin": "greeting" },
          { "name": "web", "address": "127.0.0.1", "port": 0, "framing": "http", "plugin": "greeting" } ] })");
    plugd_process p{{"-c", cfg.string()}};
    CHECK(ask(p.port("line"), "world") == "Hello, world");
    line_client c{p.port("web")};
    c.send(get_world);
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "Hello, world");
    CHECK(p.wait_for_log("listener web: listening on 127.0.0.1:"));
    CHECK(p.log().find("(framing http, plugin greeting)") != std::string::npos);
}

TEST_CASE("http: curl gets Hello, world from greeting") {
    if (!std::filesystem::exists("/usr/bin/curl")) {
        return skip_test("curl is not installed (apt-get install curl)");
    }
    served s{"greeting", "{}", "{}", bundled_plugin_dir()};
    const std::string url = "http://127.0.0.1:" + std::to_string(s.port) + "/world";
    auto r = run_program("/usr/bin/curl", {"-s", "--max-time", "5", url});
    CHECK(r.status == 0);
    CHECK(r.output == "Hello, world");
    r = run_program("/usr/bin/curl", {"-s", "--max-time", "5", "-d", "world",
                                      "http://127.0.0.1:" + std::to_string(s.port) + "/"});
    CHECK(r.output == "Hello, world");
}

TEST_CASE("http: a request that does not arrive whole within request_timeout_ms gets 408") {
    served s{"echo", "{}", R"({ "request_timeout_ms": 300, "idle_timeout_ms": 60000 })"};
    line_client idle{s.port};  // no byte sent: idle_timeout_ms applies, not this
    line_client slow{s.port};
    slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n");  // the head never ends
    auto r = read_response(slow);
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(r->headers["connection"] == "close");
    CHECK(slow.read_to_eof() == "");
    CHECK(s.process.wait_for_log("did not send a whole request within request_timeout_ms (300)"));
    CHECK_FALSE(idle.read_to_eof(500ms).has_value());  // still open: nothing to read, no EOF
    idle.send(get_world);
    r = read_response(idle);
    REQUIRE(r);
    CHECK(r->body == "v1:world");
}

TEST_CASE("http: a plugin sees method, target, headers and body, and sets status and headers") {
    served s{"echo"};
    line_client c{s.port};
    c.send(
        "PUT /items/7?full=1 HTTP/1.1\r\nHost: x\r\nx-echo-status:  201 \r\n"
        "Content-Length: 3\r\n\r\nabc");
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(r->headers["x-echo"] == "PUT /items/7?full=1");
    CHECK(r->headers["content-type"] == "application/octet-stream");
    CHECK(r->body == "body=abc;v1:abc");
    // 204 carries no body and no length; the connection goes on.
    c.send("GET /x HTTP/1.1\r\nHost: x\r\nX-Echo-Status: 204\r\n\r\n");
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 204);
    CHECK(r->headers.count("content-length") == 0);
    c.send(get_world);
    r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "v1:world");
}

TEST_CASE("http: a request in flight at SIGTERM is answered with Connection close") {
    served s{"echo", R"({ "delay_ms": 300, "log_requests": true })"};
    line_client c{s.port};
    c.send("GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(s.process.wait_for_log("handling last"));
    s.process.signal(SIGTERM);
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "v1:last");
    CHECK(r->headers["connection"] == "close");  // the client knows not to send another
    CHECK(c.read_to_eof() == "");
    CHECK(s.process.wait_exit() == 0);
}

TEST_CASE(
    "http: a request whose transfer codings do not end in chunked is refused, and the "
    "bytes after it are never served as a second request") {
    served s{"echo"};
    const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    std::vector<std::string> heads;
    for (const std::string fields :
         {"Transfer-Encoding: identity\r\n", "Transfer-Encoding: gzip\r\n",
          "Transfer-Encoding: chunked, identity\r\n",
          "Transfer-Encoding: identity\r\nContent-Length: 0\r\n",
          "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
          "Content-Length: 4\r\nContent-Length: 40\r\n", "Transfer-Encoding : chunked\r\n"})
        heads.push_back("POST / HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
    heads.push_back("GET /world HTTP/1.1\r\n\r\n");  // no Host
    heads.push_back("GET /world HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    for (const std::string& head : heads) {
        CAPTURE(head);
        line_client c{s.port};
        c.send(head + smuggled);
        auto r = read_response(c);
        REQUIRE(r);
        CHECK(r->status == 400);
        CHECK(r->headers["connection"] == "close");
        const auto rest = c.read_to_eof(5s);
        REQUIRE(rest.has_value());
        CHECK(rest->find("smuggled") == std::string::npos);
        CHECK(rest->find("HTTP/1.1") == std::string::npos);
    }
    const auto ok = http_request(s.port, "GET", "/world");  // and it serves on
    REQUIRE(ok);
    CHECK(ok->body == "v1:world");
}

TEST_CASE(
    "http: a pipelined response finished before a request that waits is sent before the "
    "wait") {
    served s{"facilities"};
    line_client c{s.port};
    c.send("GET /get%20k HTTP/1.1\r\nHost: x\r\n\r\nGET /block%202000 HTTP/1.1\r\nHost: x\r\n\r\n");
    auto fast = read_response(c, 30s);
    REQUIRE(fast);
    CHECK(fast->body == "f1:NIL");
    CHECK_FALSE(c.read_line(0ms).has_value());  // the slow response did not come with it
    auto slow = read_response(c, 30s);
    REQUIRE(slow);
    CHECK(slow->body == "f1:offloaded");
}
