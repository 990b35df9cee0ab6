// ticker's tests, through plugd's test harness (<plugd/testing.hpp>), on a manual clock.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

using namespace std::chrono_literals;

TEST_CASE("ticker counts once per interval, and goes on counting across a reload") {
    plugd::testing::plugin_host host{PLUGIN_FILE,
                                     {.config = {{"interval_ms", 100}}, .manual_clock = true}};
    CHECK(host.call("") == "ticks=0");
    host.advance(1000ms);
    CHECK(host.call("") == "ticks=10");
    host.reload({{"interval_ms", 500}});  // the old version's task is cancelled
    host.advance(1000ms);
    CHECK(host.call("") == "ticks=12");
}

TEST_CASE("ticker refuses an interval of 0") {
    CHECK_THROWS_WITH_AS(plugd::testing::plugin_host(PLUGIN_FILE, {.config = {{"interval_ms", 0}}}),
                         doctest::Contains("interval_ms must be above 0"), std::runtime_error);
}
