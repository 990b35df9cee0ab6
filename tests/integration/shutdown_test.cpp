// Graceful shutdown: SIGTERM stops accepting, lets requests in flight finish, exits 0.
#include <doctest/doctest.h>

#include <signal.h>

#include "plugd_process.hpp"

using namespace plugd::test;

TEST_CASE("SIGTERM lets a request in flight finish, then exits 0") {
    temp_dir tmp;
    plugd_process p{
        {"-c", tmp.write("server.json",
                         one_listener_config(test_plugin_dir(), "echo",
                                             R"({ "delay_ms": 700, "log_requests": true })"))
                   .string()}};
    const auto port = p.port();
    line_client busy{port};
    line_client idle{port};
    idle.send("first\n");
    REQUIRE(idle.read_line() == "v1:first");
    busy.send("slow\n");
    REQUIRE(p.wait_for_log("handling slow"));
    p.signal(SIGTERM);
    REQUIRE(p.wait_for_log("received SIGTERM"));
    CHECK(busy.read_line() == "v1:slow");
    CHECK(busy.read_to_eof() == "");
    CHECK(idle.read_to_eof() == "");
    CHECK(p.wait_exit() == 0);
    CHECK(p.log().find("plugd stopped") != std::string::npos);
}

TEST_CASE("shutdown_timeout_ms bounds the drain of a request that does not finish") {
    temp_dir tmp;
    plugd_process p{
        {"-c", tmp.write("server.json",
                         one_listener_config(test_plugin_dir(), "echo",
                                             R"({ "hang_on": "forever", "log_requests": true })",
                                             "line", R"({ "shutdown_timeout_ms": 300 })"))
                   .string()}};
    line_client c{p.port()};
    c.send("forever\n");
    REQUIRE(p.wait_for_log("handling forever"));
    const auto start = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    const auto status = p.wait_exit(5s);
    INFO(p.log());
    CHECK(status == 0);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 300ms);
    CHECK(took < 2s);  // the configured 300 ms, not the 5 s default
    CHECK(p.log().find("shutdown_timeout_ms reached") != std::string::npos);
}
