// shared_state: the per-instance map behind ctx.shared(): budget, time to live, integers,
// snapshots, and what survives a reload.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "host/shared_state.hpp"

using namespace std::chrono_literals;

TEST_CASE("set, get, erase and size") {
    plugd::shared_map_impl m{"kv", 1 << 20};
    CHECK_FALSE(m.get("k").has_value());
    m.set("k", "v");
    CHECK(m.get("k") == "v");
    m.set("k", std::string{"a\0b", 3});
    CHECK(m.get("k") == std::string{"a\0b", 3});
    CHECK(m.size() == 1);
    CHECK(m.erase("k"));
    CHECK_FALSE(m.erase("k"));
    CHECK(m.size() == 0);
    CHECK(m.bytes_used() == 0);
}

TEST_CASE("a time to live removes the entry once it has passed") {
    plugd::shared_map_impl m{"kv", 1 << 20};
    const auto start = std::chrono::steady_clock::now();  // before the set: 20 ms at least
    m.set("short", "x", 20ms);
    m.set("long", "y", 1h);
    // Polled with a deadline: the entry must vanish soon after 20 ms, and not before.
    while (m.get("short") && std::chrono::steady_clock::now() - start < 5s) {
        std::this_thread::sleep_for(5ms);
    }
    CHECK(std::chrono::steady_clock::now() - start >= 19ms);  // system vs steady clock
    CHECK_FALSE(m.get("short").has_value());
    CHECK(m.get("long") == "y");
    CHECK(m.size() == 1);
}

TEST_CASE("increment counts from zero, keeps the time to live and refuses non-integers") {
    plugd::shared_map_impl m{"kv", 1 << 20};
    CHECK(m.increment("n") == 1);
    CHECK(m.increment("n", 41) == 42);
    CHECK(m.increment("n", -50) == -8);
    m.set("text", "abc");
    CHECK_THROWS_AS(m.increment("text"), std::invalid_argument);
    m.set("big", "9223372036854775807");
    CHECK_THROWS_AS(m.increment("big"), std::invalid_argument);
    CHECK(m.get("big") == "9223372036854775807");  // unchanged
}

TEST_CASE(
    "the byte budget refuses growth with a message naming the instance and the key to raise") {
    plugd::shared_map_impl m{"kv", 1000};
    m.set("a", std::string(500, 'x'));
    try {
        m.set("b", std::string(500, 'x'));
        FAIL("a set beyond the budget was accepted");
    } catch (const std::length_error& e) {
        CHECK(std::string{e.what()}.find("shared state of plugin instance \"kv\" is full") == 0);
        CHECK(std::string{e.what()}.find("raise /plugins/kv/shared_bytes") != std::string::npos);
    }
    CHECK_FALSE(m.get("b").has_value());
    m.set("a", "small");  // shrinking is always possible
    m.set("b", std::string(500, 'x'));
    CHECK(m.size() == 2);
}

TEST_CASE("concurrent increments from several threads lose nothing") {
    plugd::shared_map_impl m{"kv", 1 << 20};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i) m.increment("n");
        });
    }
    for (auto& t : threads) t.join();
    CHECK(m.get("n") == "40000");
}

TEST_CASE("a snapshot round trip keeps bytes and times to live, and a corrupt file is refused") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("plugd-state-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "kv.state";
    {
        plugd::shared_map_impl m{"kv", 1 << 20};
        m.set(std::string{"k\n1", 3}, std::string{"v\0 2", 4});
        m.set("lasting", "1", 1h);
        m.set("gone", "1", 1ms);
        while (m.get("gone")) std::this_thread::sleep_for(1ms);
        m.save(file);
    }
    plugd::shared_map_impl loaded{"kv", 1 << 20};
    loaded.load(file);
    CHECK(loaded.size() == 2);
    CHECK(loaded.get(std::string{"k\n1", 3}) == std::string{"v\0 2", 4});
    CHECK(loaded.get("lasting") == "1");

    std::ofstream{file, std::ios::trunc} << "not a state file";
    plugd::shared_map_impl refused{"kv", 1 << 20};
    CHECK_THROWS_WITH_AS(refused.load(file),
                         doctest::Contains("no \"plugd-shared-state 1\" header"),
                         std::runtime_error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("the registry keeps an instance's map across reloads and drops a removed one") {
    plugd::shared_state state;
    auto first = state.map_for("kv", 1 << 20, {});
    first->set("k", "v");
    auto again = state.map_for("kv", 2 << 20, {});  // a reload with a new budget
    CHECK(again == first);
    CHECK(again->get("k") == "v");
    state.keep_only({"other"});
    CHECK(state.map_for("kv", 1 << 20, {})->size() == 0);  // a new, empty map
}

TEST_CASE("a full map makes room from entries whose time to live has passed") {
    plugd::shared_map_impl m{"kv", 1000};
    m.set("a", std::string(400, 'x'), 1ms);
    m.set("b", std::string(400, 'x'), 1ms);
    const auto set = std::chrono::steady_clock::now();  // both expire before set + 1 ms
    while (std::chrono::steady_clock::now() - set < 3ms) std::this_thread::yield();
    m.set("c", std::string(500, 'x'));  // fits only once the expired ones are gone
    CHECK(m.get("c").has_value());
    const auto d_set = std::chrono::steady_clock::now();
    m.set("d", std::string(100, 'x'), 1ms);
    while (std::chrono::steady_clock::now() - d_set < 3ms) std::this_thread::yield();
    m.purge_expired();
    CHECK(m.size() == 1);
    CHECK(m.bytes_used() == 1 + 500 + 64);
}
