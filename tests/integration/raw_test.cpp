// Whole-connection plugins (framing raw): handler::serve gets the connection, under the
// listener's limits, and keeps its version across reloads until it closes.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <filesystem>
#include <thread>

#include "plugd_process.hpp"
#include "reloadable.hpp"

using namespace plugd::test;

namespace {

// plugd serving a copy of echo (p.so) on one raw listener (or `framing`), replaced by tests
// as a deployment would.
struct raw_server : reloadable {
    explicit raw_server(const std::string& limits = "{}", const std::string& listener = "raw")
        : reloadable{"{}", limits, {}, listener} {}
    // A new build of the plugin, and the listener's framing changed to `to`.
    void reload_to_v2(const std::string& to, const std::string& limits = "{}") {
        use("echo_v2");
        framing = to;
        write_config("{}", limits);
        reload_ok(2);
    }
};

}  // namespace

TEST_CASE("a raw listener hands the whole connection to serve(), pipelined lines and split ones") {
    raw_server s;
    line_client c{s.port};
    c.send("a\nb\nsplit");
    CHECK(c.read_line() == "v1:a");
    CHECK(c.read_line() == "v1:b");
    c.send(" line\n");
    CHECK(c.read_line() == "v1:split line");
    c.shutdown_send();  // serve() sees the end between lines and returns: the server closes
    CHECK(c.read_to_eof() == "");
    line_client again{s.port};
    again.send("c\n");
    CHECK(again.read_line() == "v1:c");
}

TEST_CASE("a raw connection keeps its version across a reload until it closes") {
    raw_server s;
    line_client old_connection{s.port};
    old_connection.send("before\n");
    CHECK(old_connection.read_line() == "v1:before");
    s.use("echo_v2");
    s.reload_ok(2);
    line_client new_connection{s.port};
    new_connection.send("new\n");
    CHECK(new_connection.read_line() == "v2:new");
    old_connection.send("still\n");
    CHECK(old_connection.read_line() == "v1:still");  // the version it started on
    CHECK(s.process->count_log("unloaded after draining") == 0);
    old_connection.shutdown_send();
    CHECK(old_connection.read_to_eof() == "");
    CHECK_MESSAGE(s.process->wait_for_log("generation 1: unloaded after draining"),
                  s.process->log());
}

TEST_CASE("idle_timeout_ms ends a quiet raw connection as the end of input, without an error") {
    raw_server s{R"({ "idle_timeout_ms": 300 })"};
    line_client c{s.port};
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");
    const auto quiet_since = std::chrono::steady_clock::now();
    CHECK(c.read_to_eof(5s) == "");  // closed by the server, nothing written
    CHECK(std::chrono::steady_clock::now() - quiet_since >= 250ms);
    line_client after{s.port};  // the server goes on
    after.send("y\n");
    CHECK(after.read_line() == "v1:y");
    CHECK(s.process->count_log("failed a request") == 0);
}

TEST_CASE(
    "a raw connection that outlives reload_drain_timeout_ms is closed, and its version goes") {
    raw_server s{R"({ "reload_drain_timeout_ms": 300 })"};
    line_client c{s.port};
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");
    s.use("echo_v2");
    s.reload_ok(2);
    CHECK(c.wait_closed(5s));
    CHECK_MESSAGE(s.process->wait_for_log("generation 1: unloaded"), s.process->log());
}

TEST_CASE("a message trickled to read_until must arrive whole within request_timeout_ms") {
    raw_server s{R"({ "request_timeout_ms": 400 })"};
    line_client c{s.port};
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");  // a whole line in time is answered
    // Then a byte every 100 ms, never the line's end: each read is quick, the message is not.
    const auto began = std::chrono::steady_clock::now();
    bool closed = false;
    for (int i = 0; i < 50 && !closed; ++i) {
        closed = ::send(c.fd(), "y", 1, MSG_NOSIGNAL) < 0;
        std::this_thread::sleep_for(100ms);  // the client's pace, not a synchronisation
    }
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - began < 3s);
    CHECK_MESSAGE(s.process->wait_for_log("did not send the rest of a message within "
                                          "request_timeout_ms (400): closed"),
                  s.process->log());
}

TEST_CASE("serve() throwing closes only that connection and is logged with the plugin") {
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json",
                  one_listener_config(test_plugin_dir(), "echo", R"({"throw_on": "boom"})", "raw"));
    plugd_process p{{"-c", cfg.string()}};
    line_client c{p.port()};
    c.send("boom\n");
    CHECK(c.wait_closed(5s));
    CHECK_MESSAGE(p.wait_for_log("plugin p failed a request from"), p.log());
    CHECK(ask(p.port(), "fine") == "v1:fine");
}

TEST_CASE("a plugin that does not override serve() is refused on a raw listener at -t and start") {
    // Before, it passed -t and closed every connection, saying why only in the log.
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json", one_listener_config(test_plugin_dir(), "facilities", "{}", "raw"));
    for (const std::vector<std::string> args :
         {std::vector<std::string>{"-t", "-c", cfg.string()}, {"-c", cfg.string()}}) {
        const auto r = run_plugd(args);
        CHECK(r.status == 1);
        CHECK_MESSAGE(
            r.output.find("listener \"main\" (/listeners/0/framing is \"raw\"): plugin "
                          "\"p\" (" +
                          (test_plugin_dir() / "facilities.so").string() +
                          ") does not override plugd::handler::serve(plugd::connection&)") !=
                std::string::npos,
            r.output);
    }
}

TEST_CASE(
    "a plugin whose handle() does not override handler's is refused at -t, start and "
    "reload, naming the listener") {
    // Before, it passed -t and answered every request with an error.
    for (const std::string framing : {"line", "oneshot", "http"}) {
        CAPTURE(framing);
        temp_dir tmp;
        const auto cfg = tmp.write(
            "server.json", one_listener_config(test_plugin_dir(), "wrong_handle", "{}", framing));
        for (const std::vector<std::string> args :
             {std::vector<std::string>{"-t", "-c", cfg.string()}, {"-c", cfg.string()}}) {
            const auto r = run_plugd(args);
            CHECK(r.status == 1);
            CHECK_MESSAGE(
                r.output.find("listener \"main\" (/listeners/0/framing is \"" + framing +
                              "\"): plugin \"p\" (" +
                              (test_plugin_dir() / "wrong_handle.so").string() +
                              ") does not override plugd::handler::handle(plugd::request, "
                              "plugd::reply&)") != std::string::npos,
                r.output);
        }
    }
    reloadable s;
    s.use("wrong_handle");
    s.reload_fails(1);
    CHECK(s.process->log().find("does not override plugd::handler::handle") != std::string::npos);
    CHECK(s.ask("still") == "v1:still");  // the old version serves on
}

TEST_CASE("a plugin built before SDK 1.3 is refused on a raw listener, saying how to fix it") {
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json",
                  one_listener_config(test_plugin_dir(), "echo_sdk_previous_minor", "{}", "raw"));
    const auto r = run_plugd({"-t", "-c", cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("listener \"main\" (/listeners/0/framing is \"raw\"): plugin "
                                "\"p\" (" +
                                (test_plugin_dir() / "echo_sdk_previous_minor.so").string() +
                                ") was built against an SDK older than 1.3") != std::string::npos,
                  r.output);
    CHECK(r.output.find("rebuild it against this plugd's SDK") != std::string::npos);
}

TEST_CASE("serve() starts at accept, so the plugin may speak first") {
    temp_dir tmp;
    const auto cfg = tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo",
                                                                  R"({"banner": "hello"})", "raw"));
    plugd_process p{{"-c", cfg.string()}};
    line_client c{p.port()};
    CHECK(c.read_line() == "hello");  // nothing sent
    c.send("x\n");
    CHECK(c.read_line() == "v1:x");
}

TEST_CASE("a reload that changes a listener's framing leaves open connections on theirs") {
    SUBCASE("raw to line: the raw session goes on, on its version, through the sweeps") {
        // write_timeout_ms makes the sweeper tick every 100 ms.
        const std::string limits = R"({ "write_timeout_ms": 800 })";
        raw_server s{limits};
        line_client session{s.port};
        session.send("a\n");
        CHECK(session.read_line() == "v1:a");
        s.reload_to_v2("line", limits);
        // Several sweeps pass: a line connection this quiet would be parked; a raw one must not.
        std::this_thread::sleep_for(500ms);
        session.send("b\n");
        CHECK(session.read_line() == "v1:b");
        CHECK(ask(s.port, "c") == "v2:c");  // a new connection: line, new version
        CHECK(s.process->count_log("failed a request") == 0);
    }
    SUBCASE("http to raw: a keep-alive HTTP client still speaks HTTP") {
        raw_server s{"{}", "http"};
        line_client client{s.port};
        client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r = read_response(client);
        REQUIRE(r);
        CHECK(r->body == "v1:a");
        s.reload_to_v2("raw");
        client.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        r = read_response(client);
        REQUIRE(r);
        CHECK(r->body == "v2:b");
        line_client raw{s.port};  // a new connection is served whole
        raw.send("c\n");
        CHECK(raw.read_line() == "v2:c");
    }
}
