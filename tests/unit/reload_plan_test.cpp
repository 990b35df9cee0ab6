// reload_plan: what a reload loads, keeps and unloads, and which listeners keep sockets.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config.hpp"
#include "plugins/plugin_version.hpp"
#include "reload/reload_plan.hpp"

namespace {

// A folder with plugin files `a.so` and `b.so` (any bytes: the plan only hashes them).
struct plugin_dir {
    plugin_dir() {
        std::string pattern = std::filesystem::temp_directory_path() / "plugd-plan.XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()));
        path = pattern;
        write("a.so", "version 1 of a");
        write("b.so", "version 1 of b");
    }
    ~plugin_dir() { std::filesystem::remove_all(path); }
    void write(const std::string& name, const std::string& bytes) const {
        std::ofstream{path / name, std::ios::binary} << bytes;
    }
    plugd::server_config config(const std::string& plugins, const std::string& listeners) const {
        return plugd::parse_config(R"({ "plugin_dir": ")" + path.string() + R"(", "plugins": )" +
                                       plugins + R"(, "listeners": )" + listeners + " }",
                                   path / "server.json", path);
    }
    std::filesystem::path path;
};

// The plan from `running` to `next`, as if `running`'s plugins were loaded from the files
// as they are now.
plugd::reload_plan plan(const plugd::server_config& running, const plugd::server_config& next) {
    return plugd::plan_reload(running, next, [&](const std::string& name) {
        return plugd::plugin_file_hash(*running.find_plugin(name));
    });
}

const std::string two = R"({ "a": { "file": "a" }, "b": { "file": "b", "config": { "x": 1 } } })";
const std::string one_listener = R"([ { "name": "m", "port": 0, "plugin": "a" } ])";

}  // namespace

TEST_CASE("an unchanged configuration keeps everything") {
    plugin_dir d;
    const auto cfg = d.config(two, one_listener);
    const auto p = plan(cfg, cfg);
    CHECK(p.changes_nothing());
    CHECK(p.keep == std::vector<std::string>{"a", "b"});
    REQUIRE(p.keep_listeners.size() == 1);
    CHECK(p.keep_listeners[0].name == "m");
}

TEST_CASE("new bytes at the same path reload that plugin only") {
    plugin_dir d;
    const auto running = d.config(two, one_listener);
    const auto hash_before = plugd::plugin_file_hash(*running.find_plugin("a"));
    d.write("a.so", "version 2 of a");
    const auto p = plugd::plan_reload(running, running, [&](const std::string& name) {
        return name == "a" ? hash_before : plugd::plugin_file_hash(*running.find_plugin(name));
    });
    REQUIRE(p.load.size() == 1);
    CHECK(p.load[0].name == "a");
    CHECK(p.keep == std::vector<std::string>{"b"});
}

TEST_CASE("a changed config, a new instance and a dropped one") {
    plugin_dir d;
    const auto running = d.config(two, one_listener);
    const auto next = d.config(
        R"({ "a": { "file": "a" }, "b": { "file": "b", "config": { "x": 2 } }, "c": { "file": "a" } })",
        one_listener);
    auto p = plan(running, next);
    REQUIRE(p.load.size() == 2);
    CHECK(p.load[0].name == "b");
    CHECK(p.load[1].name == "c");
    CHECK(p.keep == std::vector<std::string>{"a"});
    p = plan(next, running);
    CHECK(p.unload == std::vector<std::string>{"c"});
}

TEST_CASE("listeners: kept by name and address, moved ones are removed and added") {
    plugin_dir d;
    const auto running = d.config(two, R"([ { "name": "m", "port": 9001, "plugin": "a" },
                                           { "name": "gone", "port": 9002, "plugin": "b" } ])");
    const auto next = d.config(two, R"([ { "name": "m", "port": 9003, "plugin": "a" },
                                        { "name": "new", "port": 9004, "plugin": "b",
                                          "framing": "oneshot" } ])");
    const auto p = plan(running, next);
    CHECK(p.remove == std::vector<std::string>{"m", "gone"});
    REQUIRE(p.add.size() == 2);
    CHECK(p.add[0].name == "m");
    CHECK(p.add[1].name == "new");
    CHECK(p.keep_listeners.empty());
}

TEST_CASE("a listener that only changes framing or plugin keeps its sockets") {
    plugin_dir d;
    const auto running = d.config(two, R"([ { "name": "m", "port": 9001, "plugin": "a" } ])");
    const auto next =
        d.config(two, R"([ { "name": "m", "port": 9001, "plugin": "b", "framing": "oneshot" } ])");
    const auto p = plan(running, next);
    CHECK(p.add.empty());
    CHECK(p.remove.empty());
    REQUIRE(p.keep_listeners.size() == 1);
    CHECK(p.keep_listeners[0].plugin == "b");
}

TEST_CASE("a plugin file that vanished fails the plan with the plugin's name") {
    plugin_dir d;
    const auto running = d.config(two, one_listener);
    std::filesystem::remove(d.path / "b.so");
    CHECK_THROWS_WITH_AS(plan(running, running), doctest::Contains("plugin \"b\""),
                         plugd::plugin_error);
}

TEST_CASE("a canary may change plugin instances and nothing else that serves") {
    plugin_dir d;
    const auto running = d.config(two, one_listener);
    const auto refusal = [&](const plugd::server_config& next) -> std::string {
        try {
            plugd::check_canary_plan(running, next, plan(running, next));
        } catch (const plugd::config_error& e) {
            return e.what();
        }
        return "accepted";
    };
    const std::string b_changed =
        R"({ "a": { "file": "a" }, "b": { "file": "b", "config": { "x": 2 } } })";
    CHECK(refusal(d.config(b_changed, one_listener)) == "accepted");
    CHECK(refusal(running).ends_with(
        "server.json: /plugins: no plugin instance changed (its file, bytes, config or "
        "settings): a canary would compare the versions serving with themselves; change an "
        "instance, or reload without --canary"));
    CHECK(refusal(d.config(R"({ "a": { "file": "a" }, "b": { "file": "b", "config": { "x": 1 } },
                                "c": { "file": "a" } })",
                           one_listener))
              .ends_with("server.json: /plugins/c: a new instance: a canary compares a new "
                         "version of an instance with the one serving, and this one has none; "
                         "add it in a reload without --canary"));
    CHECK(refusal(d.config(R"({ "a": { "file": "a", "config": { "y": 1 } } })", one_listener))
              .find("/plugins/b: no longer named: a canary reload changes plugin instances "
                    "only") != std::string::npos);
    CHECK(refusal(d.config(b_changed, R"([ { "name": "m", "port": 0, "plugin": "b" } ])"))
              .find("/listeners/0: changed: a canary reload changes plugin instances only (both "
                    "of its sides share everything else, so that they are compared on the same "
                    "traffic); make this change in a reload without --canary, before or after "
                    "the canary") != std::string::npos);
}
