// The server log as configured in server.json: level, JSON lines, and access logs.
#include <doctest/doctest.h>

#include <signal.h>

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

std::string config(const std::string& log, bool access_log, const std::string& framing = "line") {
    return R"({ "threads": 1, "plugin_dir": ")" + bundled_plugin_dir().string() + R"(",
        "plugins": { "greeting": { "file": "greeting" } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": ")" +
           framing + R"(", "plugin": "greeting", "access_log": )" +
           (access_log ? "true" : "false") + R"( } ],
        "log": )" +
           log + " }";
}

}  // namespace

TEST_CASE("log format json writes one JSON object per line, access lines with their fields") {
    temp_dir tmp;
    plugd_process p{
        {"-c", tmp.write("server.json", config(R"({ "format": "json" })", true)).string()}};
    const auto port = p.port();
    CHECK(ask(port, "world") == "Hello, world");
    REQUIRE(p.wait_for_log(R"("message":"access")"));
    std::istringstream lines{p.log()};
    int parsed = 0;
    bool saw_access = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line);  // throws, failing the test, if not JSON
        CHECK(j.contains("time"));
        CHECK(j.contains("level"));
        CHECK(j.contains("message"));
        ++parsed;
        if (j["message"] == "access") {
            saw_access = true;
            CHECK(j["listener"] == "main");
            CHECK(j["plugin"] == "greeting");
            CHECK(j["outcome"] == "ok");
            CHECK(j["bytes_in"] == "6");
            CHECK(j["bytes_out"] == "12");
            CHECK(j["peer"].get<std::string>().starts_with("127.0.0.1:"));
        }
    }
    CHECK(parsed >= 3);
    CHECK(saw_access);
}

TEST_CASE("a reload changes the log level and format: warn drops access lines, json returns them") {
    temp_dir tmp;
    const auto cfg = tmp.write("server.json", config(R"({ "level": "info" })", true, "http"));
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    const auto get = [&](const std::string& path) {
        line_client c{port};
        c.send("GET /" + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        return c.read_line().value_or("");
    };
    CHECK(get("one") == "HTTP/1.1 200 OK\r");
    CHECK(p.wait_for_log("info  access listener=main peer=127.0.0.1:"));
    CHECK(p.wait_for_log("plugin=greeting outcome=200 bytes_in="));

    tmp.write("server.json", config(R"({ "level": "warn" })", true, "http"));
    auto r = run_plugd({"-s", "reload", "-c", cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(get("two") == "HTTP/1.1 200 OK\r");
    // An error logged after that request: the log is read in order, so once it is there
    // an access line for "two" would be too.
    tmp.write("server.json", "{ not json");
    r = run_plugd({"-s", "reload", "-c", cfg.string()});
    CHECK(r.status != 0);
    REQUIRE(p.wait_for_log("reload failed"));
    // (Access lines, not any line that says "access": a plugin path may.)
    CHECK(p.count_log(" access listener=") == 1);  // dropped at warn

    tmp.write("server.json", config(R"({ "format": "json" })", true, "http"));
    r = run_plugd({"-s", "reload", "-c", cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(get("three") == "HTTP/1.1 200 OK\r");
    CHECK(p.wait_for_log(R"("message":"access","listener":"main")"));
}

TEST_CASE(
    "json log lines carry plugin, listener, peer and generation as fields, text lines do not "
    "repeat them") {
    temp_dir tmp;
    auto text = one_listener_config(test_plugin_dir(), "facilities");
    text.insert(text.rfind('}'), R"(, "log": { "format": "json" } )");
    const auto cfg = tmp.write("server.json", text);
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    CHECK(ask(port, "fail") == "ERR internal error");
    REQUIRE(p.wait_for_log("failed a request from"));
    p.signal(SIGHUP);
    REQUIRE(p.wait_for_log("reload: generation 2"));
    bool saw_failure = false, saw_reload = false, saw_loaded = false;
    std::istringstream lines{p.log()};
    for (std::string line; std::getline(lines, line);) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line);
        const std::string message = j["message"];
        if (message.find("failed a request from") != std::string::npos) {
            saw_failure = true;
            CHECK(j["plugin"] == "p");
            CHECK(j["listener"] == "main");
            CHECK(j["peer"].get<std::string>().starts_with("127.0.0.1:"));
        } else if (message.starts_with("reload: generation 2")) {
            saw_reload = true;
            CHECK(j["generation"] == "2");
        } else if (message.starts_with("plugin p: loaded")) {
            saw_loaded = true;
            CHECK(j["plugin"] == "p");
            CHECK(j["generation"] == "1");
        }
    }
    CHECK(saw_failure);
    CHECK(saw_reload);
    CHECK(saw_loaded);

    // The same line in text: the message names them once, no key=value repeats them.
    tmp.write("server.json", one_listener_config(test_plugin_dir(), "facilities"));
    p.signal(SIGHUP);
    REQUIRE(p.wait_for_log("reload: generation 3"));
    CHECK(ask(port, "fail") == "ERR internal error");
    REQUIRE(p.wait_for_log("failed a request from", 10s, 2));
    const std::string log = p.log();
    const auto last = log.substr(log.rfind("failed a request from"));
    CHECK(last.substr(0, last.find('\n')).find("plugin=") == std::string::npos);
}
