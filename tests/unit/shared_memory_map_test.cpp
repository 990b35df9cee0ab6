// shared_memory_map: one map for several processes, and what a process that dies holding
// its lock leaves behind (nothing wrong).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "host/shared_memory_map.hpp"
#include "host/shared_state.hpp"

using namespace std::chrono_literals;

namespace {

std::string segment(const std::string& test) {
    return "/plugd-unit-" + std::to_string(::getpid()) + "-" + test;
}

// Runs `body` in a child process that ends with _exit(0) (or dies in it); returns the wait
// status.
template <class Body>
pid_t start_child(Body body) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child's death is the point: no test framework handler reports it.
        ::signal(SIGSEGV, SIG_DFL);
        ::signal(SIGABRT, SIG_DFL);
        body();
        ::_exit(0);
    }
    return pid;
}

int wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// A lock that a dead process left behind would hang the next locker: the test fails by
// SIGALRM instead of hanging until CTest's timeout.
struct deadlock_alarm {
    deadlock_alarm() { ::alarm(20); }
    ~deadlock_alarm() { ::alarm(0); }
};

// Memory whose first page is readable and whose second faults: a value that starts 100
// bytes before the fault makes a copy of it die half-way.
struct half_readable {
    half_readable() {
        base = static_cast<char*>(
            ::mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        REQUIRE(base != MAP_FAILED);
        std::memset(base, 'v', 4096);
        REQUIRE(::mprotect(base + 4096, 4096, PROT_NONE) == 0);
    }
    ~half_readable() { ::munmap(base, 2 * 4096); }
    std::string_view crossing(std::size_t size) const { return {base + 4096 - 100, size}; }
    char* base;
};

}  // namespace

TEST_CASE("two processes see one map: what one sets the other reads, and increments add up") {
    const std::string name = segment("two");  // the child has another pid
    auto map = plugd::shared_memory_map::create(name, "kv", 1 << 20);
    map->set("from parent", "p");
    const pid_t child = start_child([&] {
        auto mine = plugd::shared_memory_map::open(name, "kv");
        if (mine->get("from parent") != "p") ::_exit(2);
        mine->set("from child", "c");
        for (int i = 0; i < 20000; ++i) mine->increment("n");
    });
    for (int i = 0; i < 20000; ++i) map->increment("n");
    const int status = wait_child(child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(map->get("from child") == "c");
    CHECK(map->get("n") == "40000");
    CHECK(map->size() == 3);
    map->check_integrity();
}

TEST_CASE("a process that dies half-way through copying a value leaves the map whole") {
    deadlock_alarm alarm;
    auto map = plugd::shared_memory_map::create(segment("torn"), "kv", 1 << 20);
    for (int i = 0; i < 100; ++i) map->set("k" + std::to_string(i), std::string(50, 'a'));
    map->set("victim", "before");
    half_readable memory;
    const pid_t child = start_child([&] {
        // Faults inside set(), the lock held, the block half written.
        map->set("victim", memory.crossing(1000));
    });
    const int status = wait_child(child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(map->recoveries() == 0);
    CHECK(map->get("victim") == "before");  // the first lock after it rebuilds
    CHECK(map->recoveries() == 1);
    map->check_integrity();
    CHECK(map->size() == 101);
    for (int i = 0; i < 100; ++i) CHECK(map->get("k" + std::to_string(i)) == std::string(50, 'a'));
    map->set("victim", "after");
    CHECK(map->get("victim") == "after");
    map->check_integrity();
}

TEST_CASE("a process that exits holding the lock hands it on: the next locker recovers") {
    deadlock_alarm alarm;
    auto map = plugd::shared_memory_map::create(segment("held"), "kv", 1 << 20);
    map->set("kept", "1");
    const pid_t child = start_child([&] { map->while_locked([] { ::_exit(0); }); });
    REQUIRE(WIFEXITED(wait_child(child)));
    CHECK(map->increment("kept") == 2);
    CHECK(map->recoveries() == 1);
    map->check_integrity();
}

TEST_CASE("processes killed at random points of their writes never corrupt or lose the others'") {
    deadlock_alarm alarm;
    // Small: the child fills it, erases, grows the index and fragments the arena.
    const std::string name = segment("killed");  // the children have other pids
    auto map = plugd::shared_memory_map::create(name, "kv", 256 << 10);
    for (int i = 0; i < 200; ++i) map->set("parent" + std::to_string(i), std::to_string(i));
    for (int round = 0; round < 40; ++round) {
        CAPTURE(round);
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t child = start_child([&, round] {
            ::close(ready[0]);
            auto mine = plugd::shared_memory_map::open(name, "kv");
            unsigned seed = 12345u + static_cast<unsigned>(round);
            for (long op = 0;; ++op) {
                seed = seed * 1103515245u + 12345u;
                const std::string key = "child" + std::to_string(seed % 500);
                try {
                    switch (seed % 4) {
                        case 0:
                        case 1:
                            mine->set(key, std::string(seed % 700, 'c'));
                            break;
                        case 2:
                            mine->erase(key);
                            break;
                        default:
                            mine->increment("child counter");
                            break;
                    }
                } catch (const std::length_error&) {
                    mine->erase(key);  // full: make room, as a plugin would
                }
                // Tells the parent it runs after a number of operations that varies by
                // round, so the kill lands at a different point each time.
                if (op == 50 + round * 37) {
                    const char c = 'r';
                    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
                }
            }
        });
        ::close(ready[1]);
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        ::close(ready[0]);
        ::kill(child, SIGKILL);
        REQUIRE(WIFSIGNALED(wait_child(child)));
        map->check_integrity();
        for (int i = 0; i < 200; i += 7)
            REQUIRE(map->get("parent" + std::to_string(i)) == std::to_string(i));
    }
    MESSAGE("recoveries after 40 kills: " << map->recoveries());
    for (int i = 0; i < 200; ++i)
        CHECK(map->get("parent" + std::to_string(i)) == std::to_string(i));
    map->check_integrity();
}

TEST_CASE("the index grows past its first size and its tombstones are cleared by a rehash") {
    auto map = plugd::shared_memory_map::create(segment("grow"), "kv", 8 << 20);
    for (int i = 0; i < 5000; ++i) map->set("k" + std::to_string(i), std::to_string(i));
    map->check_integrity();
    for (int i = 0; i < 5000; i += 2) CHECK(map->erase("k" + std::to_string(i)));
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 3000; ++i) map->set("t" + std::to_string(i), "x");
        for (int i = 0; i < 3000; ++i) map->erase("t" + std::to_string(i));
    }
    map->check_integrity();
    CHECK(map->size() == 2500);
    for (int i = 1; i < 5000; i += 2) CHECK(map->get("k" + std::to_string(i)) == std::to_string(i));
}

TEST_CASE("a worker's registry maps the master's segments, and only the master saves state files") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("plugd-shm-state-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "kv.state";
    {
        plugd::shared_map_impl earlier{"kv", 1 << 20};
        earlier.set("saved", "by a single plugd");
        earlier.save(file);
    }
    plugd::shared_state master{plugd::shared_state::placement::segments_made_here};
    auto made = master.map_for("kv", 1 << 20, file);  // loads the file
    plugd::shared_state worker{plugd::shared_state::placement::segments_of_master, ::getpid()};
    auto mapped = worker.map_for("kv", 1 << 20, file);
    CHECK(mapped->get("saved") == "by a single plugd");
    mapped->set("new", "from a worker");
    CHECK(made->get("new") == "from a worker");
    std::filesystem::remove(file);
    CHECK(worker.save_all());
    CHECK_FALSE(std::filesystem::exists(file));  // a worker never writes it
    CHECK(master.save_all());
    plugd::shared_map_impl reread{"kv", 1 << 20};
    reread.load(file);
    CHECK(reread.get("new") == "from a worker");
    // The layout is made for the budget at start: a reload may not raise it beyond.
    CHECK_THROWS_WITH_AS(master.map_for("kv", 2 << 20, file),
                         doctest::Contains("/plugins/kv/shared_bytes: 2097152 bytes is more than"),
                         std::runtime_error);
    CHECK(master.map_for("kv", 1 << 19, file) == made);
    // A worker finds no segment for an instance the master did not make.
    CHECK_THROWS_WITH_AS(worker.map_for("other", 1 << 20, {}), doctest::Contains("cannot open"),
                         std::runtime_error);
    std::filesystem::remove_all(dir);
}
