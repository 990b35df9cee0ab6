// The command line: -t on good and bad configs and plugins, --version, --help, start-up errors.
#include <doctest/doctest.h>

#include <fstream>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

run_result check(const temp_dir& tmp, const std::string& config) {
    return run_plugd({"-t", "-c", tmp.write("server.json", config).string()});
}

}  // namespace

TEST_CASE("-t accepts a good config and loads its plugins") {
    temp_dir tmp;
    const auto r = check(tmp, one_listener_config(test_plugin_dir(), "echo"));
    CHECK(r.status == 0);
    CHECK(contains(r.output, "is valid and its 1 plugin instance(s) load"));
}

TEST_CASE("-t accepts the bundled server.json") {
    const auto r = run_plugd({"-t", "-c", PLUGD_SOURCE_DIR "/server.json"});
    CHECK(r.status == 0);
}

TEST_CASE("-t refuses a syntax error with line and column") {
    temp_dir tmp;
    const auto r = check(tmp, "{\n \"threads\": 1,,\n}");
    CHECK(r.status == 1);
    CHECK(contains(r.output, "server.json:2:15: syntax error"));
    CHECK(contains(r.output, "configuration test failed"));
}

TEST_CASE("-t refuses a semantic error naming the JSON path") {
    temp_dir tmp;
    const auto r = check(tmp, one_listener_config(test_plugin_dir(), "echo", "{}", "udp"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "/listeners/0/framing: \"udp\" is not a framing"));
}

TEST_CASE("a missing plugin file is refused with the plugin, the file and what to check") {
    temp_dir tmp;
    const auto r = check(tmp, one_listener_config(test_plugin_dir(), "absent"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "plugin \"p\" (" + (test_plugin_dir() / "absent.so").string() +
                                 "): cannot read the file: No such file or directory; check "
                                 "/plugins/p/file and /plugin_dir"));
}

TEST_CASE("a file that is not a shared library is refused") {
    temp_dir tmp;
    tmp.write("fake.so", "#!/bin/sh\necho not a library\n");
    const auto r = check(tmp, one_listener_config(tmp.path(), "fake"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "fake.so): not a shared library: not an ELF file"));
}

TEST_CASE("a plugin without the export is refused, naming what to add") {
    temp_dir tmp;
    const auto r = check(tmp, one_listener_config(test_plugin_dir(), "no_factory"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "does not export plugd_make_handler; add PLUGD_PLUGIN"));
}

TEST_CASE("a plugin built for another ABI is refused before any of its code runs") {
    temp_dir tmp;
    // wrong_abi aborts in a static initialiser: a status of 1 (not a crash) proves it
    // was never loaded.
    const auto r = check(tmp, one_listener_config(test_plugin_dir(), "wrong_abi"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "built for another plugd ABI (boost: plugin 107400, plugd "));
    CHECK(contains(r.output, "rebuild the plugin against this plugd's SDK"));
}

TEST_CASE("a plugin whose constructor refuses its config is reported") {
    temp_dir tmp;
    const auto r = check(
        tmp, one_listener_config(test_plugin_dir(), "echo", R"({ "fail_construction": true })"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "refused its config (/plugins/p/config): fail_construction is set"));
}

TEST_CASE("greeting refuses a config value of the wrong type") {
    temp_dir tmp;
    const auto r = check(
        tmp, one_listener_config(bundled_plugin_dir(), "greeting", R"({ "delay_ms": "soon" })"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "plugin \"p\""));
    CHECK(contains(r.output, "refused its config (/plugins/p/config)"));
}

TEST_CASE("serving refuses to start when a plugin's start() fails") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json", one_listener_config(test_plugin_dir(), "echo", R"({ "fail_start": true })"));
    const auto r = run_plugd({"-c", cfg.string()});
    CHECK(r.status == 1);
    CHECK(contains(r.output, "start() failed: fail_start is set; not started"));
}

TEST_CASE("serving refuses to start when a port is taken") {
    temp_dir tmp;
    plugd_process first{
        {"-c", tmp.write("a.json", one_listener_config(test_plugin_dir(), "echo")).string()}};
    const auto port = first.port();
    std::string cfg = one_listener_config(test_plugin_dir(), "echo");
    cfg.replace(cfg.find("\"port\": 0"), 9, "\"port\": " + std::to_string(port));
    cfg.replace(0, 1, R"({ "pid_file": "b.pid",)");  // the pid file is not what collides
    const auto r = run_plugd({"-c", tmp.write("b.json", cfg).string()});
    CHECK(r.status == 1);
    CHECK(contains(r.output,
                   "cannot bind 127.0.0.1:" + std::to_string(port) + ": Address already in use"));
    CHECK(contains(r.output, "another process already listens there"));
    CHECK(contains(r.output, "/listeners/0"));
}

TEST_CASE("a config nested deeper than 64 levels is refused by -t, not a crash") {
    temp_dir tmp;
    const std::string deep_plugins =
        R"({ "plugins": )" + std::string(100'000, '[') + std::string(100'000, ']') + " }";
    auto r = check(tmp, deep_plugins);
    CHECK(r.status == 1);
    CHECK(contains(r.output, "nesting deeper than 64 levels"));

    const std::string deep_config = std::string(1'000'000, '[') + std::string(1'000'000, ']');
    r = check(tmp,
              one_listener_config(test_plugin_dir(), "echo", R"({ "x": )" + deep_config + " }"));
    CHECK(r.status == 1);
    CHECK(contains(r.output, "server.json: /plugins/p/config/x/0/0/0/"));
    CHECK(contains(r.output, "nesting deeper than 64 levels"));
}

TEST_CASE("--version prints the version and the ABI fingerprint") {
    const auto r = run_plugd({"--version"});
    CHECK(r.status == 0);
    CHECK(contains(r.output, "plugd 0."));
    CHECK(contains(r.output, "plugin ABI: sdk=1.5;compiler="));
    CHECK(contains(r.output, ";boost=108100;"));
}

TEST_CASE("an unknown argument prints the usage and fails") {
    const auto r = run_plugd({"--frobnicate"});
    CHECK(r.status == 2);
    CHECK(contains(r.output, "unknown argument \"--frobnicate\""));
    CHECK(contains(r.output, "usage: plugd"));
}

TEST_CASE("a plugin built against an older SDK minor loads, one built against a newer is refused") {
    temp_dir tmp;
    auto r = check(tmp, one_listener_config(test_plugin_dir(), "echo_sdk_previous_minor"));
    CHECK_MESSAGE(r.status == 0, r.output);
    r = check(tmp, one_listener_config(test_plugin_dir(), "echo_sdk_next_minor"));
    CHECK(r.status == 1);
    // wrong_abi-style proof that nothing ran: the message comes from the file alone.
    CHECK_MESSAGE(contains(r.output,
                           "built for another plugd ABI (sdk: plugin 1.6, plugd 1.5: the "
                           "plugin needs SDK 1.6 facilities this plugd lacks; upgrade "
                           "plugd to one with SDK 1.6 or newer)"),
                  r.output);
}
