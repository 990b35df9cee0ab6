// examples/ticker, built against the installed SDK: its background task counts, keeps
// counting across reloads, and stops cleanly.
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <thread>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

int ticks(std::uint16_t port) {
    line_client c{port};
    c.send("?\n");
    const auto reply = c.read_line().value_or("");
    REQUIRE(reply.rfind("ticks=", 0) == 0);
    return std::stoi(reply.substr(6));
}

// Polls until the count passes `above` (bounded): the task runs every 20 ms.
int ticks_above(std::uint16_t port, int above) {
    int now = ticks(port);
    for (const auto deadline = std::chrono::steady_clock::now() + 5s;
         now <= above && std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::sleep_for(10ms);
        now = ticks(port);
    }
    return now;
}

}  // namespace

TEST_CASE("ticker counts in the background, across reloads, and stops without a crash") {
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    const auto built = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "ticker" / "ticker.so";
    install_plugin(built, plugins, "ticker.so");
    const auto write = [&](int interval) {
        return tmp.write("server.json", one_listener_config(plugins, "ticker",
                                                            R"({ "interval_ms": )" +
                                                                std::to_string(interval) + " }"));
    };
    plugd_process p{{"-c", write(20).string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1"));
    const int first = ticks_above(port, 0);
    CHECK(first > 0);
    for (int generation = 2; generation <= 6; ++generation) {
        write(20 + generation);  // a new config: a new version, a new task
        p.signal(SIGHUP);
        REQUIRE(p.wait_for_log("reload: generation " + std::to_string(generation) + " in"));
    }
    REQUIRE(p.wait_for_log("plugin p generation 5: unloaded after draining"));
    const int later = ticks_above(port, first);
    CHECK(later > first);  // the count went on from where it was
    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
}
