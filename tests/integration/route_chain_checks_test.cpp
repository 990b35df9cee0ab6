// A chain whose instances cannot stand where they stand is refused before anything serves
// it: by -t, at start and by a reload, which leaves the running composition as it was.
#include <doctest/doctest.h>

#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "line_client.hpp"
#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

// A server.json over the test plugins with one http listener "web" of two routes: /a/
// behind the gate filter, and /b/ whose chain is `b_chain`. `plugins` is added to the
// instances every config has; instance b answers `b_answer`.
std::string config(const std::string& b_chain, const std::string& plugins = "",
                   const std::string& b_answer = "b") {
    return R"({ "plugin_dir": ")" + test_plugin_dir().string() + R"(",
        "plugins": {
            "gate": { "file": "gate" },
            "a": { "file": "route_echo", "config": { "answer": "a" } },
            "b": { "file": "route_echo", "config": { "answer": ")" +
           b_answer + R"(" } } )" + plugins + R"( },
        "listeners": [ { "name": "web", "address": "127.0.0.1", "port": 0, "framing": "http",
            "routes": [
                { "name": "guarded", "path": "/a/", "chain": ["gate", "a"] },
                { "name": "open", "path": "/b/", "chain": )" +
           b_chain + R"( } ] } ] })";
}

// The refusal of instance `plugin` (file route_echo) at /listeners/0/routes/1/chain/0,
// before `next`.
std::string not_a_filter(const std::string& plugin, const std::string& next) {
    return "listener \"web\" (/listeners/0/routes/1/chain/0): plugin \"" + plugin + "\" (" +
           (test_plugin_dir() / "route_echo.so").string() +
           ") is not a filter, so it cannot stand before \"" + next +
           "\" in a chain: it does not override plugd::handler::filter(plugd::request, "
           "plugd::reply&, plugd::chain_next); put it last, or use a filter plugin there";
}

std::optional<http_response> get(line_client& c, const std::string& target,
                                 const std::string& fields = "") {
    c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
    return read_response(c);
}

// What the running server answers on each route: the old composition's replies.
void check_old_composition(std::uint16_t port) {
    line_client c{port};
    auto r = get(c, "/a/x");
    REQUIRE(r);
    CHECK(r->status == 401);  // still behind the gate
    r = get(c, "/a/x", "X-Token: A\r\n");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "a route=guarded rest=x message=x token=A");
    CHECK(r->headers["x-gate"] == "A 200");
    r = get(c, "/b/y");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "b route=open rest=y message=y token=");
    CHECK_FALSE(r->headers.contains("x-gate"));
}

}  // namespace

TEST_CASE(
    "a chain whose non-final instance is not a filter is refused by -t, at start and by a "
    "reload, naming the listener, the JSON path and the plugin") {
    temp_dir tmp;
    // "plain" (route_echo answers, it filters nothing) before the gate filter.
    const std::string plain = R"(, "plain": { "file": "route_echo", "config": { "answer": "p" } })";
    const auto bad = tmp.write("bad.json", config(R"(["plain", "gate", "b"])", plain));
    const std::string expected = not_a_filter("plain", "gate");

    SUBCASE("plugd -t exits 1 with the message") {
        const auto r = run_plugd({"-t", "-c", bad.string()});
        CHECK(r.status == 1);
        CHECK_MESSAGE(r.output.find(expected) != std::string::npos, r.output);
        CHECK_MESSAGE(r.output.find("configuration test failed") != std::string::npos, r.output);
    }
    SUBCASE("starting plugd with it fails with the message") {
        const auto r = run_plugd({"-c", bad.string()});
        CHECK(r.status == 1);
        CHECK_MESSAGE(r.output.find(expected) != std::string::npos, r.output);
        CHECK(r.output.find("listening on") == std::string::npos);
    }
    SUBCASE("a reload to it is refused and the old composition serves on") {
        const auto cfg = tmp.write("server.json", config(R"(["b"])"));
        // Sanity: the good config passes -t, so what -t refuses is the chain alone.
        const auto checked = run_plugd({"-t", "-c", cfg.string()});
        REQUIRE_MESSAGE(checked.status == 0, checked.output);
        plugd_process p{{"-c", cfg.string()}};
        const auto port = p.port("web");
        REQUIRE(p.wait_for_log("serving generation 1"));
        check_old_composition(port);

        // A new instance that is not a filter, and b's config changed beside it: a reload
        // that applied anything would answer /b/ differently.
        tmp.write("server.json", config(R"(["plain", "gate", "b"])", plain, "B"));
        p.signal(SIGHUP);
        REQUIRE_MESSAGE(p.wait_for_log("reload failed: "), p.log());
        CHECK_MESSAGE(p.log().find("reload failed: " + expected) != std::string::npos, p.log());
        check_old_composition(port);

        // An instance already serving, unchanged, put before another.
        tmp.write("server.json", config(R"(["a", "b"])"));
        p.signal(SIGHUP);
        REQUIRE_MESSAGE(p.wait_for_log("reload failed: ", 10s, 2), p.log());
        CHECK_MESSAGE(p.log().find("reload failed: " + not_a_filter("a", "b")) != std::string::npos,
                      p.log());
        check_old_composition(port);
        CHECK(p.count_log("reload: generation") == 0);

        // And the server still reloads a good config.
        tmp.write("server.json", config(R"(["gate", "b"])"));
        p.signal(SIGHUP);
        REQUIRE_MESSAGE(p.wait_for_log("reload: generation 2"), p.log());
        line_client c{port};
        const auto r = get(c, "/b/y");
        REQUIRE(r);
        CHECK(r->status == 401);
    }
}
