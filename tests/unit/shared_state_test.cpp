// shared_state: the per-instance map behind ctx.shared(): budget, time to live, integers,
// snapshots, and what survives a reload.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "host/shared_memory_map.hpp"
#include "host/shared_state.hpp"

using namespace std::chrono_literals;

namespace {

// The semantic cases run on both maps: a single plugd's (in-process) and the one all
// workers share (shared memory): one contract.
struct map_of_kind {
    const char* kind;
    std::shared_ptr<plugd::instance_map> map;
};

std::vector<map_of_kind> each_map(std::size_t budget) {
    static int made = 0;
    return {{"in-process", std::make_shared<plugd::shared_map_impl>("kv", budget)},
            {"shared memory",
             plugd::shared_memory_map::create(
                 "/plugd-unit-" + std::to_string(::getpid()) + "-" + std::to_string(++made), "kv",
                 budget)}};
}

}  // namespace

TEST_CASE("set, get, erase and size") {
    for (auto& [kind, m] : each_map(1 << 20)) {
        CAPTURE(kind);
        CHECK_FALSE(m->get("k").has_value());
        m->set("k", "v");
        CHECK(m->get("k") == "v");
        m->set("k", std::string{"a\0b", 3});
        CHECK(m->get("k") == std::string{"a\0b", 3});
        CHECK(m->size() == 1);
        CHECK(m->erase("k"));
        CHECK_FALSE(m->erase("k"));
        CHECK(m->size() == 0);
        CHECK(m->bytes_used() == 0);
    }
}

TEST_CASE("a time to live removes the entry once it has passed") {
    for (auto& [kind, m] : each_map(1 << 20)) {
        CAPTURE(kind);
        const auto start = std::chrono::steady_clock::now();  // before the set: 20 ms at least
        m->set("short", "x", 20ms);
        m->set("long", "y", 1h);
        // Polled with a deadline: the entry must vanish soon after 20 ms, and not before.
        while (m->get("short") && std::chrono::steady_clock::now() - start < 5s) {
            std::this_thread::sleep_for(5ms);
        }
        CHECK(std::chrono::steady_clock::now() - start >= 19ms);  // system vs steady clock
        CHECK_FALSE(m->get("short").has_value());
        CHECK(m->get("long") == "y");
        CHECK(m->size() == 1);
    }
}

TEST_CASE("increment counts from zero, keeps the time to live and refuses non-integers") {
    for (auto& [kind, m] : each_map(1 << 20)) {
        CAPTURE(kind);
        CHECK(m->increment("n") == 1);
        CHECK(m->increment("n", 41) == 42);
        CHECK(m->increment("n", -50) == -8);
        m->set("text", "abc");
        CHECK_THROWS_AS(m->increment("text"), std::invalid_argument);
        m->set("big", "9223372036854775807");
        CHECK_THROWS_AS(m->increment("big"), std::invalid_argument);
        CHECK(m->get("big") == "9223372036854775807");  // unchanged
        m->set("ttl", "5", 1h);
        CHECK(m->increment("ttl") == 6);
        CHECK(m->size() == 4);
    }
}

TEST_CASE(
    "the byte budget refuses growth with a message naming the instance and the key to raise") {
    for (auto& [kind, m] : each_map(1000)) {
        CAPTURE(kind);
        m->set("a", std::string(500, 'x'));
        try {
            m->set("b", std::string(500, 'x'));
            FAIL("a set beyond the budget was accepted");
        } catch (const std::length_error& e) {
            CHECK(std::string{e.what()}.find("shared state of plugin instance \"kv\" is full") ==
                  0);
            CHECK(std::string{e.what()}.find("raise /plugins/kv/shared_bytes") !=
                  std::string::npos);
        }
        CHECK_FALSE(m->get("b").has_value());
        m->set("a", "small");  // shrinking is always possible
        m->set("b", std::string(500, 'x'));
        CHECK(m->size() == 2);
    }
}

TEST_CASE("concurrent increments from several threads lose nothing") {
    for (auto& [kind, m] : each_map(1 << 20)) {
        CAPTURE(kind);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 10000; ++i) m->increment("n");
            });
        }
        for (auto& t : threads) t.join();
        CHECK(m->get("n") == "40000");
    }
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
    for (auto& [kind, m] : each_map(1000)) {
        CAPTURE(kind);
        m->set("a", std::string(400, 'x'), 1ms);
        m->set("b", std::string(400, 'x'), 1ms);
        const auto set = std::chrono::steady_clock::now();  // both expire before set + 1 ms
        while (std::chrono::steady_clock::now() - set < 3ms) std::this_thread::yield();
        m->set("c", std::string(500, 'x'));  // fits only once the expired ones are gone
        CHECK(m->get("c").has_value());
        const auto d_set = std::chrono::steady_clock::now();
        m->set("d", std::string(100, 'x'), 1ms);
        while (std::chrono::steady_clock::now() - d_set < 3ms) std::this_thread::yield();
        m->purge_expired();
        CHECK(m->size() == 1);
        CHECK(m->bytes_used() == 1 + 500 + 64);
    }
}

namespace {

// A state file written by hand: the snapshot header, then `body`.
std::filesystem::path write_state_file(const std::filesystem::path& dir, const std::string& body) {
    std::filesystem::create_directories(dir);
    const auto file = dir / "kv.state";
    std::ofstream{file, std::ios::binary | std::ios::trunc} << "plugd-shared-state 1\n" << body;
    return file;
}

long peak_resident_kib() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

}  // namespace

TEST_CASE("a state file claiming more bytes than it holds is refused before any is allocated") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("plugd-state-len-" + std::to_string(::getpid()));
    // 40 bytes that claim a 512 MiB value.
    const auto file = write_state_file(dir, "1 536870912 -1\nk");
    REQUIRE(std::filesystem::file_size(file) < 64);
    const long before = peak_resident_kib();
    plugd::shared_map_impl m{"kv", std::size_t{1} << 30};
    try {
        m.load(file);
        FAIL("a file claiming a 512 MiB entry was accepted");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find(file.string()) == 0);
        CHECK(what.find("entry 1, at byte 21") != std::string::npos);
        CHECK(what.find("bytes are left") != std::string::npos);
        CHECK(what.find("move it away") != std::string::npos);
    }
    const long grown_mib = (peak_resident_kib() - before) / 1024;
    MESSAGE("peak resident memory grew by " << grown_mib << " MiB");
    CHECK(grown_mib < 64);
    CHECK(m.size() == 0);

    // An entry that is really there but larger than shared_bytes is refused by its size.
    const auto big = write_state_file(dir, "1 5000 -1\nk" + std::string(5000, 'v'));
    plugd::shared_map_impl small{"kv", 4096};
    CHECK_THROWS_WITH_AS(small.load(big),
                         doctest::Contains("entry 1 (at byte 21) needs 5065 bytes, more than the "
                                           "4096 bytes of /plugins/kv/shared_bytes"),
                         std::runtime_error);
    // Entries that fit one by one but not together: the one that overflows is named.
    const auto many = write_state_file(
        dir, "1 3000 -1\na" + std::string(3000, 'v') + "1 3000 -1\nb" + std::string(3000, 'v'));
    plugd::shared_map_impl fits_one{"kv", 4096};
    CHECK_THROWS_WITH_AS(fits_one.load(many), doctest::Contains("entry 2 (at byte 3032)"),
                         std::runtime_error);
    // Malformed headers: negative or non-numeric lengths, a missing newline.
    for (const char* body : {"-1 1 -1\nk", "x 1 -1\nk", "1 1 -5\nkv", "1 1 -1kv", "1 1\nkv"}) {
        plugd::shared_map_impl refused{"kv", 1 << 20};
        CHECK_THROWS_AS(refused.load(write_state_file(dir, body)), std::runtime_error);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("times to live are saved as wall-clock times and expired entries are dropped at load") {
    using std::chrono::system_clock;
    const auto dir =
        std::filesystem::temp_directory_path() / ("plugd-state-ttl-" + std::to_string(::getpid()));
    const auto ms = [](system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    };
    const auto now = system_clock::now();
    {
        plugd::shared_map_impl m{"kv", 1 << 20};
        m.set("hour", "1", 1h);
        std::filesystem::create_directories(dir);
        m.save(dir / "kv.state");
    }
    // What is on disk is the wall-clock expiry in milliseconds since the epoch (a reboot
    // resets steady_clock, not this).
    std::ifstream saved{dir / "kv.state", std::ios::binary};
    std::string header, entry;
    std::getline(saved, header);
    std::getline(saved, entry);
    CHECK(header == "plugd-shared-state 1");
    const long long expires = std::stoll(entry.substr(entry.rfind(' ') + 1));
    CHECK(expires >= ms(now + 1h));
    CHECK(expires <= ms(system_clock::now() + 1h));

    // A file written before a reboot: one entry expired an hour ago, one expires in an
    // hour, one never; and one expiry so far ahead it must not overflow the clock.
    const auto file = write_state_file(dir, "4 1 " + std::to_string(ms(now - 1h)) + "\ngone1" +
                                                "4 1 " + std::to_string(ms(now + 1h)) + "\nkept2" +
                                                "5 1 -1\nlast33" + "3 1 9223372036854775807\nfar4");
    plugd::shared_map_impl loaded{"kv", 1 << 20};
    loaded.load(file);
    CHECK_FALSE(loaded.get("gone").has_value());
    CHECK(loaded.get("kept") == "2");
    CHECK(loaded.get("last3") == "3");
    CHECK(loaded.get("far") == "4");
    CHECK(loaded.size() == 3);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a state file that is not a regular file is refused without being opened") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("plugd-state-fifo-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto fifo = dir / "kv.state";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    plugd::shared_map_impl m{"kv", 1 << 20};
    // Opening a FIFO for reading would wait for a writer: this returns at once or never.
    CHECK_THROWS_WITH_AS(m.load(fifo),
                         doctest::Contains("is a FIFO (named pipe), not a regular file"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(plugd::check_state_file(fifo, "kv"),
                         doctest::Contains(("/plugins/kv/state_file: " + fifo.string()).c_str()),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(
        plugd::check_state_file(dir / "missing" / "kv.state", "kv"),
        doctest::Contains(("plugd cannot create files in " + (dir / "missing").string()).c_str()),
        std::runtime_error);
    plugd::check_state_file(dir / "fine.state", "kv");  // a folder it can write in
    CHECK(std::distance(std::filesystem::directory_iterator{dir},
                        std::filesystem::directory_iterator{}) == 1);  // the probe is gone
    std::filesystem::remove_all(dir);
}
