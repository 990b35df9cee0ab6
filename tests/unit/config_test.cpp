// server.json validation: every error names the file, the place and what is expected.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.hpp"
#include "reload/restart_needed.hpp"

namespace {

using plugd::config_error;

const std::filesystem::path source = "/etc/plugd/server.json";
const std::filesystem::path bundled = "/opt/plugd/lib/plugd";

plugd::server_config parse(const std::string& text) {
    return plugd::parse_config(text, source, bundled);
}

// The message of the config_error `text` raises (fails the test if it parses).
std::string error_of(const std::string& text) {
    try {
        parse(text);
    } catch (const config_error& e) {
        return e.what();
    }
    FAIL("expected a config_error for: " << text);
    return {};
}

const std::string plugins = R"("plugins": { "greeting": { "file": "greeting" } })";
std::string with_listener(const std::string& listener) {
    return "{ " + plugins + R"(, "listeners": [ )" + listener + " ] }";
}

}  // namespace

TEST_CASE("a minimal config gets the documented defaults") {
    auto cfg = parse(with_listener(R"({ "name": "main", "port": 8888, "plugin": "greeting" })"));
    CHECK(cfg.threads == 0);
    CHECK(cfg.plugin_dir == bundled);
    CHECK(cfg.pid_file == "/etc/plugd/plugd.pid");
    REQUIRE(cfg.plugins.size() == 1);
    CHECK(cfg.plugins[0].file == bundled / "greeting.so");
    CHECK(cfg.plugins[0].config == nlohmann::json::object());
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].address == "127.0.0.1");
    CHECK(cfg.listeners[0].framing == plugd::framing_kind::line);
    CHECK(cfg.limits.max_connections == 10000);
    CHECK(cfg.limits.max_request_bytes == 65536);
    CHECK(cfg.limits.idle_timeout.count() == 60000);
    CHECK(cfg.limits.shutdown_timeout.count() == 5000);
    CHECK(cfg.limits.shutdown_delay.count() == 0);
    CHECK_FALSE(cfg.admin);
    CHECK(cfg.canary.min_requests == 500);
    CHECK(cfg.canary.min_duration.count() == 30000);
    CHECK(cfg.canary.max_error_ratio == 2.0);
    CHECK(cfg.canary.max_error_rate == 0.01);
    CHECK(cfg.canary.max_p99_ratio == 1.5);
    CHECK(cfg.canary.max_duration.count() == 600000);
    CHECK(cfg.canary.sticky == plugd::canary_sticky::none);
}

TEST_CASE("canary settings: sticky by peer or by a header, and bounds that can be met") {
    const auto with_canary = [](const std::string& canary) {
        return "{ " + plugins +
               R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ], "canary": )" +
               canary + " }";
    };
    auto cfg =
        parse(with_canary(R"({ "sticky": "peer", "max_error_ratio": 3, "max_error_rate": 0.05,
                                      "max_p99_ratio": 1.25, "min_requests": 50 })"));
    CHECK(cfg.canary.sticky == plugd::canary_sticky::peer);
    CHECK(cfg.canary.max_error_ratio == 3.0);
    CHECK(cfg.canary.max_error_rate == 0.05);
    CHECK(cfg.canary.max_p99_ratio == 1.25);
    CHECK(cfg.canary.min_requests == 50);
    cfg = parse(with_canary(R"({ "sticky": "X-User-Id" })"));
    CHECK(cfg.canary.sticky == plugd::canary_sticky::header);
    CHECK(cfg.canary.sticky_header == "X-User-Id");
    CHECK(error_of(with_canary(R"({ "sticky": "user id" })")) ==
          "/etc/plugd/server.json: /canary/sticky: \"user id\" is neither \"peer\" (one side per "
          "client address) nor the name of a request header field (such as \"X-User-Id\": one "
          "side per value); leave it out for no stickiness");
    CHECK(error_of(with_canary(R"({ "max_error_ratio": 0.5 })")) ==
          "/etc/plugd/server.json: /canary/max_error_ratio: expected a number from 1 to 1e+06, got "
          "0.5");
    CHECK(error_of(with_canary(R"({ "max_error_rate": "1%" })")) ==
          "/etc/plugd/server.json: /canary/max_error_rate: expected a number from 0 to 1, got "
          "\"1%\" (string)");
    CHECK(error_of(with_canary(R"({ "min_duration_ms": 60000, "max_duration_ms": 60000 })")) ==
          "/etc/plugd/server.json: /canary/max_duration_ms: 60000 is not above min_duration_ms "
          "(60000): every canary would be rolled back before it could be promoted; raise it, or "
          "lower min_duration_ms");
    CHECK(error_of(with_canary(R"({ "percent": 20 })"))
              .starts_with("/etc/plugd/server.json: /canary/percent: unknown key; expected one of: "
                           "min_requests, min_duration_ms,"));
}

TEST_CASE("the admin endpoint is loopback unless allow_remote says otherwise") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ], )";
    auto cfg = parse("{ " + plugins + listener + R"("admin": { "port": 9901 } })");
    REQUIRE(cfg.admin);
    CHECK(cfg.admin->address == "127.0.0.1");
    CHECK(cfg.admin->port == 9901);
    CHECK(parse("{ " + plugins + listener + R"("admin": { "address": "::1", "port": 0 } })").admin);

    const auto remote = error_of("{ " + plugins + listener +
                                 R"("admin": { "address": "0.0.0.0", "port": 9901 } })");
    CHECK(remote.find("/admin/address") != std::string::npos);
    CHECK(remote.find("allow_remote") != std::string::npos);
    const auto no_token =
        error_of("{ " + plugins + listener +
                 R"("admin": { "address": "0.0.0.0", "port": 9901, "allow_remote": true } })");
    CHECK(no_token.find("/admin/allow_remote") != std::string::npos);
    CHECK(no_token.find("needs /admin/token_file") != std::string::npos);
    CHECK(error_of("{ " + plugins + listener + R"("admin": { "address": "127.0.0.1" } })")
              .find("/admin/port: missing") != std::string::npos);
    CHECK(error_of("{ " + plugins + listener + R"("admin": { "port": 1, "auth": "x" } })")
              .find("/admin/auth: unknown key") != std::string::npos);
}

TEST_CASE("admin.token_file must be a regular file only its owner can read, holding a token") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ], )";
    char name[] = "/tmp/plugd-token-XXXXXX";
    const int fd = ::mkstemp(name);  // mode 600
    REQUIRE(fd >= 0);
    const std::string file = name;
    auto with_token = [&](const std::string& text) {
        std::ofstream{file, std::ios::trunc} << text;
        return "{ " + plugins + listener +
               R"("admin": { "address": "0.0.0.0", "port": 9901, "allow_remote": true, )"
               R"("token_file": ")" +
               file + R"(" } })";
    };
    auto cfg = parse(with_token("s3cret-token-0123456789abcdef\nignored"));
    REQUIRE(cfg.admin);
    CHECK(cfg.admin->allow_remote);
    CHECK(cfg.admin->token_file == file);
    CHECK(cfg.admin->token == "s3cret-token-0123456789abcdef");

    CHECK(error_of(with_token("short\n")).find("at least 16 characters") != std::string::npos);
    CHECK(error_of(with_token("has spaces in the token\n")).find("/admin/token_file") !=
          std::string::npos);
    const std::string config = with_token("s3cret-token-0123456789abcdef\n");
    ::fchmod(fd, 0640);
    const auto readable = error_of(config);
    CHECK(readable.find("/admin/token_file") != std::string::npos);
    CHECK(readable.find("mode 640") != std::string::npos);
    CHECK(readable.find("chmod 600 " + file) != std::string::npos);
    ::close(fd);
    std::filesystem::remove(file);
    CHECK(error_of(config).find("cannot open \"" + file + "\"") != std::string::npos);
    // Relative to server.json's folder, like every path in it.
    CHECK(error_of("{ " + plugins + listener +
                   R"("admin": { "port": 9901, "token_file": "admin.token" } })")
              .find("/etc/plugd/admin.token") != std::string::npos);
}

TEST_CASE("shutdown_delay_ms may be 0 and is server-wide only") {
    auto cfg = parse("{ " + plugins +
                     R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ],
                     "limits": { "shutdown_delay_ms": 2500 } })");
    CHECK(cfg.limits.shutdown_delay.count() == 2500);
    CHECK(
        error_of(
            with_listener(
                R"({ "name": "m", "port": 1, "plugin": "greeting", "limits": { "shutdown_delay_ms": 5 } })"))
            .find("/listeners/0/limits/shutdown_delay_ms: unknown key") != std::string::npos);
}

TEST_CASE("relative paths resolve against the config file's folder") {
    auto cfg = parse(R"({ "plugin_dir": "plugins", "pid_file": "run/p.pid", )" + plugins +
                     R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ] })");
    CHECK(cfg.plugin_dir == "/etc/plugd/plugins");
    CHECK(cfg.plugins[0].file == "/etc/plugd/plugins/greeting.so");
    CHECK(cfg.pid_file == "/etc/plugd/run/p.pid");
}

TEST_CASE("two instances of one library keep their own configs") {
    auto cfg = parse(R"({ "plugins": {
        "en": { "file": "greeting", "config": { "prefix": "Hello, " } },
        "fr": { "file": "greeting.so", "config": { "prefix": "Bonjour, " } } },
        "listeners": [ { "name": "a", "port": 1, "plugin": "en" },
                       { "name": "b", "port": 2, "plugin": "fr", "framing": "oneshot" } ] })");
    REQUIRE(cfg.plugins.size() == 2);
    CHECK(cfg.plugins[0].file == cfg.plugins[1].file);
    CHECK(cfg.find_plugin("fr")->config["prefix"] == "Bonjour, ");
    CHECK(cfg.listeners[1].framing == plugd::framing_kind::oneshot);
}

TEST_CASE("a syntax error names the line and column") {
    const auto msg = error_of("{\n  \"threads\": 1,\n  \"plugins\": { oops }\n}");
    CHECK(msg.find("/etc/plugd/server.json:3:16: syntax error") == 0);
}

TEST_CASE("a number too large for JSON is a config error, not a crash (found by fuzzing)") {
    const auto msg = error_of(R"({ "threads": 2222222222e2222222 })");
    CHECK(msg.find("/etc/plugd/server.json: invalid JSON: number overflow parsing") == 0);
}

TEST_CASE("an unknown key is refused with the keys that are allowed") {
    const auto msg =
        error_of(with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting", "prot": 2 })"));
    CHECK(msg.find("/listeners/0/prot: unknown key; expected one of: name, address, port") !=
          std::string::npos);
    CHECK(error_of(R"({ "thread": 1 })").find(": /thread: unknown key") != std::string::npos);
}

TEST_CASE("a wrong type names the JSON path and the expected type") {
    auto msg = error_of(with_listener(R"({ "name": "m", "port": "8888", "plugin": "greeting" })"));
    CHECK(msg ==
          "/etc/plugd/server.json: /listeners/0/port: expected an integer from 0 to "
          "65535, got \"8888\" (string)");
    msg = error_of(with_listener(R"({ "name": "m", "port": 70000, "plugin": "greeting" })"));
    CHECK(msg.find("/listeners/0/port: expected an integer from 0 to 65535, got 70000") !=
          std::string::npos);
    msg = error_of(with_listener(R"({ "name": "m", "port": -1, "plugin": "greeting" })"));
    CHECK(msg.find("/listeners/0/port: expected an integer") != std::string::npos);
    msg = error_of(R"({ "threads": true })");
    CHECK(msg.find("/threads: expected an integer") != std::string::npos);
    msg = error_of(
        R"({ "plugins": { "g": { "file": "greeting", "config": [] } }, "listeners": [] })");
    CHECK(msg.find("/plugins/g/config: expected an object, got [] (array)") != std::string::npos);
}

TEST_CASE("a missing required key is named") {
    CHECK(error_of(with_listener(R"({ "name": "m", "plugin": "greeting" })"))
              .find("/listeners/0/port: missing") != std::string::npos);
    CHECK(error_of(R"({ "listeners": [] })").find("/plugins: missing") != std::string::npos);
    CHECK(error_of("{ " + plugins + " }").find("/listeners: missing") != std::string::npos);
    CHECK(error_of("{ " + plugins + R"(, "listeners": [] })")
              .find("/listeners: expected a non-empty array") != std::string::npos);
}

TEST_CASE("duplicate names are refused") {
    auto msg = error_of(with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting" },
                                         { "name": "m", "port": 2, "plugin": "greeting" })"));
    CHECK(msg.find("/listeners/1/name: duplicate listener name \"m\", also used by /listeners/0") !=
          std::string::npos);
    msg = error_of(R"({ "plugins": { "g": { "file": "a" }, "g": { "file": "b" } } })");
    CHECK(msg.find("/plugins/g: duplicate key") != std::string::npos);
    msg = error_of(with_listener(R"({ "name": "a", "port": 9, "plugin": "greeting" },
                                    { "name": "b", "port": 9, "plugin": "greeting" })"));
    CHECK(msg.find("/listeners/1/port: 127.0.0.1:9 is already used by /listeners/0") !=
          std::string::npos);
}

TEST_CASE("a listener naming a missing plugin lists the instances there are") {
    const auto msg = error_of(with_listener(R"({ "name": "m", "port": 1, "plugin": "greting" })"));
    CHECK(msg.find("/listeners/0/plugin: no plugin instance named \"greting\" in /plugins "
                   "(instances: greeting)") != std::string::npos);
}

TEST_CASE("addresses must be numeric IPv4 or IPv6") {
    CHECK(
        error_of(with_listener(
                     R"({ "name": "m", "address": "localhost", "port": 1, "plugin": "greeting" })"))
            .find("/listeners/0/address: \"localhost\" is not a numeric IPv4 or IPv6 address") !=
        std::string::npos);
    CHECK(
        error_of(with_listener(
                     R"({ "name": "m", "address": "256.1.1.1", "port": 1, "plugin": "greeting" })"))
            .find("/listeners/0/address") != std::string::npos);
    auto cfg = parse(
        with_listener(R"({ "name": "m", "address": "::1", "port": 1, "plugin": "greeting" })"));
    CHECK(cfg.listeners[0].address == "::1");
}

TEST_CASE("framing must be line, oneshot, http or raw") {
    CHECK(error_of(
              with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting", "framing": "h2" })"))
              .find("/listeners/0/framing: \"h2\" is not a framing; expected \"line\", "
                    "\"oneshot\", \"http\" or \"raw\"") != std::string::npos);
    auto cfg = parse(
        with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting", "framing": "http" })"));
    CHECK(cfg.listeners[0].framing == plugd::framing_kind::http);
    cfg = parse(
        with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting", "framing": "raw" })"));
    CHECK(cfg.listeners[0].framing == plugd::framing_kind::raw);
}

TEST_CASE("limits are checked for range") {
    const std::string l =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ], "limits": )";
    CHECK(error_of("{ " + plugins + l + R"({ "max_request_bytes": 0 } })")
              .find("/limits/max_request_bytes: expected an integer from 1 to") !=
          std::string::npos);
    CHECK(error_of("{ " + plugins + l + R"({ "idle_timeout": 5 } })")
              .find("/limits/idle_timeout: unknown key") != std::string::npos);
    auto cfg = parse("{ " + plugins + l + R"({ "idle_timeout_ms": 250, "max_connections": 3 } })");
    CHECK(cfg.limits.idle_timeout.count() == 250);
    CHECK(cfg.limits.max_connections == 3);
}

TEST_CASE("a plugin file cannot escape plugin_dir") {
    CHECK(error_of(R"({ "plugins": { "g": { "file": "../evil" } }, "listeners": [] })")
              .find("/plugins/g/file: must not leave plugin_dir") != std::string::npos);
    CHECK(error_of(R"({ "plugins": { "g": { "file": "/tmp/evil.so" } }, "listeners": [] })")
              .find("/plugins/g/file: must be a file name inside plugin_dir") != std::string::npos);
}

TEST_CASE("the built-in default serves greeting on 127.0.0.1:8888 in line framing") {
    auto cfg = plugd::default_config(bundled);
    REQUIRE(cfg.listeners.size() == 1);
    CHECK(cfg.listeners[0].address == "127.0.0.1");
    CHECK(cfg.listeners[0].port == 8888);
    CHECK(cfg.listeners[0].framing == plugd::framing_kind::line);
    CHECK(cfg.find_plugin("greeting")->file == bundled / "greeting.so");
}

TEST_CASE("a missing config file is reported with what to do") {
    try {
        plugd::load_config("/nonexistent/server.json", bundled);
        FAIL("expected an error");
    } catch (const config_error& e) {
        CHECK(std::string{e.what()}.find("/nonexistent/server.json: cannot open") == 0);
    }
}

TEST_CASE("user must exist") {
    CHECK(error_of(R"({ "user": "no-such-user-plugd" })")
              .find("/user: no user named \"no-such-user-plugd\"") != std::string::npos);
}

TEST_CASE("user goes with supervised workers: the workers run as that user") {
    for (const std::string supervision : {R"("workers": 2)", R"("supervise": true)"}) {
        CAPTURE(supervision);
        const auto cfg =
            parse("{ " + supervision + R"(, "user": "nobody", )" + plugins +
                  R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ] })");
        CHECK(cfg.user == "nobody");
    }
}

TEST_CASE("a listener's limits override the server's, and only per-connection ones") {
    auto cfg = parse(R"({ "limits": { "idle_timeout_ms": 100, "request_timeout_ms": 200 }, )" +
                     plugins + R"(, "listeners": [
        { "name": "a", "port": 1, "plugin": "greeting", "limits": { "idle_timeout_ms": 5 } },
        { "name": "b", "port": 2, "plugin": "greeting" } ] })");
    CHECK(cfg.listeners[0].limits.idle_timeout.count() == 5);
    CHECK(cfg.listeners[0].limits.request_timeout.count() == 200);
    CHECK(cfg.listeners[1].limits.idle_timeout.count() == 100);
    CHECK(
        error_of(
            with_listener(
                R"({ "name": "m", "port": 1, "plugin": "greeting", "limits": { "shutdown_timeout_ms": 5 } })"))
            .find("/listeners/0/limits/shutdown_timeout_ms: unknown key") != std::string::npos);
}

TEST_CASE("a topic subscriber's queue and slow policy are limits, the message size a topics key") {
    auto cfg = parse(with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting" })"));
    CHECK(cfg.limits.max_queued_messages == 1024);
    CHECK(cfg.limits.slow_subscriber == plugd::slow_subscriber_policy::close);
    CHECK(cfg.topics.max_message_bytes == 65536);
    cfg = parse(R"({ "limits": { "max_queued_messages": 10, "slow_subscriber": "unsubscribe" },
        "topics": { "max_message_bytes": 100 }, )" +
                plugins + R"(, "listeners": [
        { "name": "a", "port": 1, "plugin": "greeting",
          "limits": { "max_queued_messages": 3, "slow_subscriber": "close" } },
        { "name": "b", "port": 2, "plugin": "greeting" } ] })");
    CHECK(cfg.listeners[0].limits.max_queued_messages == 3);
    CHECK(cfg.listeners[0].limits.slow_subscriber == plugd::slow_subscriber_policy::close);
    CHECK(cfg.listeners[1].limits.max_queued_messages == 10);
    CHECK(cfg.listeners[1].limits.slow_subscriber == plugd::slow_subscriber_policy::unsubscribe);
    CHECK(cfg.topics.max_message_bytes == 100);
    CHECK(error_of("{ " + plugins + R"(, "limits": { "slow_subscriber": "drop" } })")
              .find("/limits/slow_subscriber: \"drop\" is not a policy; expected \"close\"") !=
          std::string::npos);
    CHECK(error_of("{ " + plugins + R"(, "limits": { "max_queued_messages": 0 } })")
              .find("/limits/max_queued_messages: expected an integer from 1 to") !=
          std::string::npos);
    CHECK(error_of("{ " + plugins + R"(, "topics": { "redis": { "server": "a" } } })")
              .find("/topics/redis/server: unknown key") != std::string::npos);
    CHECK(error_of("{ " + plugins + R"(, "topics": { "max_message_bytes": 0 } })")
              .find("/topics/max_message_bytes: expected an integer from 1 to") !=
          std::string::npos);
}

TEST_CASE("topics.max_message_bytes takes a restart, the topic limits a reload") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ])";
    const auto running = parse("{ " + plugins + listener + " }");
    auto next = parse("{ " + plugins + listener + R"(, "limits": { "max_queued_messages": 5 } })");
    CHECK_NOTHROW(plugd::check_no_restart_needed(running, next));
    next = parse("{ " + plugins + listener + R"(, "topics": { "max_message_bytes": 10 } })");
    try {
        plugd::check_no_restart_needed(running, next);
        FAIL("expected a config_error");
    } catch (const config_error& e) {
        CHECK(std::string{e.what()}.find("/topics/max_message_bytes: cannot change while running "
                                         "(\"65536\" -> \"10\")") != std::string::npos);
    }
}

TEST_CASE("instance and listener names are plain: they end up in file names and logs") {
    CHECK(error_of(R"({ "plugins": { "../x": { "file": "a" } } })")
              .find("/plugins/..~1x: \"../x\" is not a usable instance name") != std::string::npos);
    CHECK(error_of(with_listener(R"({ "name": "a b", "port": 1, "plugin": "greeting" })"))
              .find("/listeners/0/name: \"a b\" is not a usable listener name") !=
          std::string::npos);
}

TEST_CASE("nesting is bounded at 64 levels, plugin configs included, with the JSON path") {
    const auto nested = [](std::size_t depth) {
        return std::string(depth, '[') + std::string(depth, ']');
    };
    CHECK(error_of(R"({ "plugins": )" + nested(100'000) + " }") ==
          "/etc/plugd/server.json: /plugins" +
              [] {
                  std::string p;
                  for (int i = 0; i < 63; ++i) p += "/0";
                  return p;
              }() +
              ": nesting deeper than 64 levels; flatten this value (no server.json or plugin "
              "config needs more)");
    // 64 levels in all (the document itself, /plugins, /plugins/greeting, /config, 60 arrays)
    // are fine; one more is not.
    const auto with_config = [&](std::size_t depth) {
        return R"({ "plugins": { "greeting": { "file": "greeting", "config": { "x": )" +
               nested(depth) +
               R"( } } }, "listeners": [ { "name": "main", "port": 1, "plugin": "greeting" } ] })";
    };
    CHECK(parse(with_config(60)).plugins.front().config.dump().size() == 126);
    CHECK(error_of(with_config(61)).find("/plugins/greeting/config/x/0/") != std::string::npos);
}

TEST_CASE("log takes a level and a format, and a listener an access_log switch") {
    auto cfg = parse(
        R"({ "log": { "level": "debug", "format": "json" }, )" +
        with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting", "access_log": true })")
            .substr(1));
    CHECK(cfg.log.level == plugd::log_level::debug);
    CHECK(cfg.log.json);
    CHECK(cfg.listeners[0].access_log);
    CHECK(error_of(R"({ "log": { "level": "loud" }, )" +
                   with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting" })").substr(1))
              .find("/log/level: \"loud\" is not a level; expected \"debug\", \"info\", "
                    "\"warn\" or \"error\"") != std::string::npos);
    CHECK(error_of(R"({ "log": { "format": "xml" }, )" +
                   with_listener(R"({ "name": "m", "port": 1, "plugin": "greeting" })").substr(1))
              .find("/log/format: \"xml\" is not a log format") != std::string::npos);
    CHECK(error_of(with_listener(
                       R"({ "name": "m", "port": 1, "plugin": "greeting", "access_log": "yes" })"))
              .find("/listeners/0/access_log: expected true or false") != std::string::npos);
}

TEST_CASE("a state_file is accepted with supervised workers: the master saves it") {
    const std::string state =
        R"("plugins": { "greeting": { "file": "greeting", "state_file": "s" } })";
    for (const std::string supervision : {R"("workers": 2)", R"("supervise": true)", ""}) {
        CAPTURE(supervision);
        CHECK(parse("{ " + supervision + (supervision.empty() ? "" : ", ") + state +
                    R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ] })")
                  .plugins[0]
                  .state_file == "/etc/plugd/s");
    }
}

TEST_CASE("a TLS listener's ticket_key_rotation_ms defaults to an hour and is at least a second") {
    const std::string tls = R"("tls": { "certificate": "c.pem", "private_key": "k.pem")";
    auto cfg =
        parse(with_listener(R"({ "name": "s", "port": 1, "plugin": "greeting", )" + tls + " } }"));
    REQUIRE(cfg.listeners.at(0).tls);
    CHECK(cfg.listeners.at(0).tls->ticket_key_rotation == std::chrono::hours{1});
    cfg = parse(with_listener(R"({ "name": "s", "port": 1, "plugin": "greeting", )" + tls +
                              R"(, "ticket_key_rotation_ms": 60000 } })"));
    CHECK(cfg.listeners.at(0).tls->ticket_key_rotation == std::chrono::minutes{1});
    CHECK(error_of(with_listener(R"({ "name": "s", "port": 1, "plugin": "greeting", )" + tls +
                                 R"(, "ticket_key_rotation_ms": 10 } })"))
              .find("/listeners/0/tls/ticket_key_rotation_ms: expected an integer from 1000 to") !=
          std::string::npos);
}

TEST_CASE("an http listener's websocket object: defaults, values, and what it refuses") {
    const std::string http = R"({ "name": "w", "port": 1, "framing": "http", "plugin": "greeting")";
    auto cfg = parse(with_listener(http + " }"));
    const auto& defaults = cfg.listeners.at(0).websocket;
    CHECK(defaults.ping_interval == std::chrono::seconds{25});
    CHECK(defaults.idle_timeout == std::chrono::seconds{60});
    CHECK(defaults.max_message_bytes == 65536);
    cfg = parse(with_listener(http + R"(, "websocket": { "ping_interval_ms": 0,
        "idle_timeout_ms": 5000, "max_message_bytes": 100 } })"));
    const auto& set = cfg.listeners.at(0).websocket;
    CHECK(set.ping_interval.count() == 0);
    CHECK(set.idle_timeout == std::chrono::seconds{5});
    CHECK(set.max_message_bytes == 100);
    // A ping must come before the idle timeout closes the session.
    CHECK(error_of(with_listener(http + R"(, "websocket": { "ping_interval_ms": 60000,
        "idle_timeout_ms": 60000 } })"))
              .find("/listeners/0/websocket/ping_interval_ms: 60000 is not below "
                    "idle_timeout_ms (60000)") != std::string::npos);
    CHECK(error_of(with_listener(http + R"(, "websocket": { "pings": 1 } })"))
              .find("/listeners/0/websocket/pings: unknown key") != std::string::npos);
    // Only an http request can ask for an upgrade.
    CHECK(error_of(
              with_listener(R"({ "name": "l", "port": 1, "plugin": "greeting", "websocket": {} })"))
              .find("/listeners/0/websocket: WebSocket sessions are served on http listeners") !=
          std::string::npos);
}

TEST_CASE("topics.redis has defaults, and each wrong key is named with what to do") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ])";
    const auto redis = [&](const std::string& object) {
        return "{ " + plugins + listener + R"(, "topics": { "redis": )" + object + " } }";
    };
    CHECK_FALSE(parse("{ " + plugins + listener + " }").topics.redis);
    auto cfg = parse(redis("{}"));
    REQUIRE(cfg.topics.redis);
    CHECK(cfg.topics.redis->host == "127.0.0.1");
    CHECK(cfg.topics.redis->port == 6379);
    CHECK(cfg.topics.redis->channel_prefix == "plugd:");
    CHECK(cfg.topics.redis->max_pending == 10000);
    CHECK(cfg.topics.redis->password.empty());
    cfg = parse(redis(R"({ "host": "redis.internal", "port": 6380, "password_file": "",
                           "channel_prefix": "", "max_pending": 5 })"));
    CHECK(cfg.topics.redis->host == "redis.internal");
    CHECK(cfg.topics.redis->port == 6380);
    CHECK(cfg.topics.redis->password_file.empty());
    CHECK(cfg.topics.redis->channel_prefix.empty());
    CHECK(cfg.topics.redis->max_pending == 5);

    CHECK(error_of(redis("true")).find("/topics/redis: expected an object") != std::string::npos);
    CHECK(error_of(redis(R"({ "port": 0 })"))
              .find("/topics/redis/port: expected an integer from 1 to 65535") !=
          std::string::npos);
    CHECK(error_of(redis(R"({ "host": "" })")).find("/topics/redis/host: expected a non-empty") !=
          std::string::npos);
    CHECK(error_of(redis(R"({ "max_pending": 0 })")).find("/topics/redis/max_pending") !=
          std::string::npos);
    const auto pattern = error_of(redis(R"({ "channel_prefix": "app*" })"));
    CHECK(pattern.find("/topics/redis/channel_prefix: \"app*\" holds a Redis pattern character") !=
          std::string::npos);
    CHECK(pattern.find("use a plain prefix") != std::string::npos);
    CHECK(error_of(redis(R"({ "channel_prefix": 7 })"))
              .find("/topics/redis/channel_prefix: expected a string") != std::string::npos);
}

TEST_CASE("topics.redis.password_file is read like the admin token: private, first line") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ])";
    char name[] = "/tmp/plugd-redis-password-XXXXXX";
    const int fd = ::mkstemp(name);  // mode 600
    REQUIRE(fd >= 0);
    const std::string file = name;
    auto with_password = [&](const std::string& text) {
        std::ofstream{file, std::ios::trunc} << text;
        return "{ " + plugins + listener + R"(, "topics": { "redis": { "password_file": ")" + file +
               R"(" } } })";
    };
    auto cfg = parse(with_password("hunter2\nignored"));
    REQUIRE(cfg.topics.redis);
    CHECK(cfg.topics.redis->password == "hunter2");
    CHECK(cfg.topics.redis->password_file == file);
    CHECK(error_of(with_password("\n"))
              .find("/topics/redis/password_file: \"" + file + "\" holds no password") !=
          std::string::npos);
    const std::string config = with_password("hunter2\n");
    ::fchmod(fd, 0644);
    const auto readable = error_of(config);
    CHECK(readable.find("/topics/redis/password_file") != std::string::npos);
    CHECK(readable.find("chmod 600 " + file) != std::string::npos);
    ::close(fd);
    std::filesystem::remove(file);
    const auto missing = error_of(config);
    CHECK(missing.find("/topics/redis/password_file: cannot open \"" + file + "\"") !=
          std::string::npos);
    CHECK(missing.find("remove /topics/redis/password_file") != std::string::npos);
}

TEST_CASE("topics.redis takes a restart: added, removed, moved or a new password") {
    const std::string listener =
        R"(, "listeners": [ { "name": "m", "port": 1, "plugin": "greeting" } ])";
    const auto running = parse("{ " + plugins + listener + " }");
    const auto bridged = parse("{ " + plugins + listener + R"(, "topics": { "redis": {} } })");
    const auto message = [](const plugd::server_config& a, const plugd::server_config& b) {
        try {
            plugd::check_no_restart_needed(a, b);
        } catch (const config_error& e) {
            return std::string{e.what()};
        }
        return std::string{};
    };
    CHECK(message(running, bridged)
              .find("/topics/redis: cannot change while running (\"none\" "
                    "-> \"127.0.0.1:6379") != std::string::npos);
    CHECK(message(bridged, running).find("/topics/redis: cannot change while running") !=
          std::string::npos);
    auto moved = bridged;
    moved.topics.redis->port = 6380;
    CHECK(message(bridged, moved).find("restart plugd to change it") != std::string::npos);
    auto password = bridged;
    password.topics.redis->password = "other";
    const auto secret = message(bridged, password);
    CHECK(secret.find("/topics/redis/password_file: the password") != std::string::npos);
    CHECK(secret.find("other") == std::string::npos);
    CHECK(message(bridged, bridged).empty());
}
