// kv's tests, through plugd's test harness (<plugd/testing.hpp>).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

TEST_CASE("kv sets, gets, increments and deletes") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    CHECK(host.call("SET k v") == "OK");
    CHECK(host.call("GET k") == "v");
    CHECK(host.call("INCR k") == "ERR value is not an integer");
    CHECK(host.call("DEL k") == "1");
    CHECK(host.call("GET k") == "NIL");
}

TEST_CASE("kv's increments from several threads at once lose none") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    const auto replies = host.call_concurrently(std::vector<std::string>(100, "INCR n"));
    CHECK(replies.size() == 100);
    CHECK(host.call("GET n") == "100");
}

TEST_CASE("kv's data survives a reload") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    CHECK(host.call("SET kept yes") == "OK");
    host.reload(nlohmann::json::object());
    CHECK(host.call("GET kept") == "yes");
}
