// hello's tests, through plugd's test harness (<plugd/testing.hpp>): the built plugin in
// this process, no server, no socket.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

using namespace std::chrono_literals;

TEST_CASE("hello answers with the configured greeting") {
    plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"greeting", "Howdy"}}}};
    CHECK(host.call("world") == "Howdy, world!");
}

TEST_CASE("hello's delay is a host timer: the reply waits for the clock") {
    plugd::testing::plugin_host host{PLUGIN_FILE,
                                     {.config = {{"delay_ms", 100}}, .manual_clock = true}};
    auto call = host.start("world");
    host.advance(99ms);
    CHECK_FALSE(call.ready());
    host.advance(1ms);
    CHECK(call.get() == "Hello, world!");
}

TEST_CASE("hello refuses a negative delay, naming the key") {
    CHECK_THROWS_WITH_AS(plugd::testing::plugin_host(PLUGIN_FILE, {.config = {{"delay_ms", -1}}}),
                         doctest::Contains("refused its config (/plugins/test/config): delay_ms"),
                         std::runtime_error);
}
