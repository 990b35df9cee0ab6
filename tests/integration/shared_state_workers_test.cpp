// ctx.shared() with workers: one map per plugin instance for every worker process (shared
// memory made by the master), which survives a worker's death, even one that dies while
// writing, and which the master alone saves to the state_file and loads from it.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

std::string config(const std::string& file, const std::string& state_file = "") {
    return R"({ "threads": 1, "workers": 2, "plugin_dir": ")" + test_plugin_dir().string() +
           R"(", "plugins": { "p": { "file": ")" + file + R"(")" +
           (state_file.empty() ? "" : R"(, "state_file": ")" + state_file + R"(")") +
           R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ] })";
}

// Whether the master with pid `master` has the shared memory segment of its instance
// `instance` in /dev/shm. By name, not every "plugd-<pid>-" there: /dev/shm is the
// machine's and pids come round again (pid_max may be 32768), so a segment that a master
// killed long ago with the same pid left under another instance's name may be there; this
// master neither made it nor removes it. (One under the same name, it replaces at start.)
bool has_segment(pid_t master, const std::string& instance) {
    return std::filesystem::exists("/dev/shm/plugd-" + std::to_string(master) + "-" + instance);
}

// Sends every line of `lines` on one connection (pipelined) and returns the replies.
std::vector<std::string> ask_all(std::uint16_t port, const std::vector<std::string>& lines) {
    line_client c{port};
    std::string batch;
    for (const auto& l : lines) batch += l + "\n";
    c.send(batch);
    std::vector<std::string> replies;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto r = c.read_line();
        if (!r) break;
        replies.push_back(std::move(*r));
    }
    return replies;
}

// A state file's entries by key; nullopt when it is not a whole, well-formed one.
std::optional<std::map<std::string, std::string>> read_state_file(
    const std::filesystem::path& file) {
    std::ifstream in{file, std::ios::binary};
    std::string text{std::istreambuf_iterator<char>{in}, {}};
    const std::string magic = "plugd-shared-state 1\n";
    if (!text.starts_with(magic)) return std::nullopt;
    std::map<std::string, std::string> entries;
    std::size_t at = magic.size();
    while (at < text.size()) {
        const auto eol = text.find('\n', at);
        if (eol == std::string::npos) return std::nullopt;
        std::size_t key = 0, value = 0;
        long long expires = 0;
        const char* p = text.data() + at;
        const char* end = text.data() + eol;
        auto r = std::from_chars(p, end, key);
        if (r.ec != std::errc{} || *r.ptr != ' ') return std::nullopt;
        r = std::from_chars(r.ptr + 1, end, value);
        if (r.ec != std::errc{} || *r.ptr != ' ') return std::nullopt;
        r = std::from_chars(r.ptr + 1, end, expires);
        if (r.ec != std::errc{} || r.ptr != end) return std::nullopt;
        at = eol + 1;
        if (text.size() - at < key + value) return std::nullopt;
        entries[text.substr(at, key)] = text.substr(at + key, value);
        at += key + value;
    }
    return entries;
}

}  // namespace

TEST_CASE(
    "workers: a value set through one connection is read back through 50 new connections "
    "served by both workers") {
    temp_dir tmp;
    plugd_process plugd{{"-c", tmp.write("server.json", config("shared_writer")).string()}};
    const auto port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 2));
    CHECK(ask(port, "SET greeting hello from one worker") == "OK");
    std::set<std::string> pids;
    int read_back = 0;
    // One accept queue, two processes: which worker takes a connection is the kernel's
    // choice; new connections until both have answered and 50 have read the value back.
    for (int i = 0; i < 500 && (read_back < 50 || pids.size() < 2); ++i) {
        const auto replies = ask_all(port, {"PID", "GET greeting"});
        REQUIRE(replies.size() == 2);
        pids.insert(replies[0]);
        CHECK(replies[1] == "hello from one worker");
        ++read_back;
    }
    CHECK(read_back >= 50);
    CHECK(pids.size() == 2);
    CHECK(ask(port, "INCR n") == "1");
    CHECK(ask(port, "INCR n") == "2");
    CHECK(ask(port, "SIZE") == "2");
    CHECK(has_segment(plugd.pid(), "p"));
    plugd.signal(SIGTERM);
    CHECK(plugd.wait_exit() == 0);
    CHECK_FALSE(has_segment(plugd.pid(), "p"));  // the master removes it at stop
}

TEST_CASE("workers: a worker killed with SIGKILL loses none of examples/kv's data") {
    temp_dir tmp;
    plugd_process plugd{{"-c", tmp.write("server.json", config("kv")).string()}};
    const auto port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 2));
    std::vector<std::string> sets, gets;
    for (int i = 0; i < 500; ++i) {
        sets.push_back("SET key" + std::to_string(i) + " value " + std::to_string(i));
        gets.push_back("GET key" + std::to_string(i));
    }
    REQUIRE(ask_all(port, sets) == std::vector<std::string>(500, "OK"));
    const auto workers = children_of(plugd.pid());
    REQUIRE(workers.size() == 2);
    for (const pid_t w : workers) {
        ::kill(w, SIGKILL);
        REQUIRE(plugd.wait_for_log("(pid " + std::to_string(w) + ") died of SIGKILL"));
        // Whichever worker serves each of these connections, everything is there.
        for (int round = 0; round < 4; ++round) {
            const auto replies = ask_all(port, gets);
            REQUIRE(replies.size() == 500);
            for (int i = 0; i < 500; ++i) CHECK(replies[i] == "value " + std::to_string(i));
        }
    }
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 4));  // both replaced
    CHECK(ask(port, "GET key499") == "value 499");
}

TEST_CASE(
    "workers: 20 stop and start rounds with writers running bring all 1000 keys back "
    "from the state_file, which is never corrupt") {
    temp_dir tmp;
    const auto state = tmp.path() / "kv.state";
    const auto cfg = tmp.write("server.json", config("kv", state.string()));
    std::vector<std::string> sets, gets, expected;
    for (int i = 0; i < 1000; ++i) {
        sets.push_back("SET key" + std::to_string(i) + " value " + std::to_string(i));
        gets.push_back("GET key" + std::to_string(i));
        expected.push_back("value " + std::to_string(i));
    }
    for (int round = 0; round < 20; ++round) {
        CAPTURE(round);
        plugd_process plugd{{"-c", cfg.string()}};
        const auto port = plugd.port();
        REQUIRE_MESSAGE(plugd.wait_for_log("serving generation 1", 10s, 2), plugd.log());
        if (round == 0) REQUIRE(ask_all(port, sets) == std::vector<std::string>(1000, "OK"));
        REQUIRE(ask_all(port, gets) == expected);
        // Writers: each sets its own key to 1, 2, 3... and remembers the last one
        // acknowledged; the stop comes while they write.
        constexpr int writers = 4;
        std::atomic<int> acknowledged[writers] = {};
        std::atomic<bool> stop{false};
        std::mutex early_mutex;
        std::string early;  // writers that stopped before their first reply, and why
        std::vector<std::thread> threads;
        for (int w = 0; w < writers; ++w) {
            threads.emplace_back([&, w] {
                line_client c{port};
                for (int n = 1; !stop; ++n) {
                    c.send("SET writer" + std::to_string(w) + " " + std::to_string(n) + "\n");
                    const auto reply = c.read_line(2s);
                    if (reply != "OK") {  // the server stopped
                        if (acknowledged[w] == 0) {
                            const std::lock_guard lock{early_mutex};
                            early += "writer " + std::to_string(w) + ": " +
                                     reply.value_or("<no reply>") + "\n";
                        }
                        return;
                    }
                    acknowledged[w] = n;
                }
            });
        }
        // Every writer is under way (a bounded wait: a writer that stops early fails below).
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        for (int w = 0; w < writers; ++w) {
            while (acknowledged[w] < 20 && std::chrono::steady_clock::now() < deadline)
                std::this_thread::yield();
        }
        plugd.signal(SIGTERM);
        REQUIRE_MESSAGE(plugd.wait_exit(20s) == 0, plugd.log());
        stop = true;
        for (auto& t : threads) t.join();
        CHECK_MESSAGE(early.empty(), early << plugd.log());
        CHECK_FALSE(has_segment(plugd.pid(), "p"));
        CHECK_FALSE(std::filesystem::exists(state.string() + ".tmp"));
        const auto saved = read_state_file(state);
        REQUIRE_MESSAGE(saved, "the state file is not a whole snapshot after round " << round);
        for (int i = 0; i < 1000; i += 37)
            CHECK(saved->at("key" + std::to_string(i)) == "value " + std::to_string(i));
        CHECK(saved->size() == 1000 + writers);
        // What was acknowledged before the stop is saved (or the one write after it whose
        // reply the stop cut off).
        for (int w = 0; w < writers; ++w) {
            const int value = std::stoi(saved->at("writer" + std::to_string(w)));
            CHECK(value >= acknowledged[w]);
            CHECK(value <= acknowledged[w] + 1);
        }
    }
}

TEST_CASE(
    "workers: a worker that dies while writing to the shared state leaves the others "
    "serving and the map whole") {
    temp_dir tmp;
    plugd_process plugd{{"-c", tmp.write("server.json", config("shared_writer")).string()}};
    const auto port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 2));
    std::vector<std::string> sets, gets, expected;
    for (int i = 0; i < 100; ++i) {
        sets.push_back("SET key" + std::to_string(i) + " value " + std::to_string(i));
        gets.push_back("GET key" + std::to_string(i));
        expected.push_back("value " + std::to_string(i));
    }
    REQUIRE(ask_all(port, sets) == std::vector<std::string>(100, "OK"));
    REQUIRE(ask(port, "SET victim before") == "OK");
    {
        line_client c{port};
        c.send("CRASHSET victim\n");
        CHECK_FALSE(c.read_line());  // its worker died in the middle of the set
    }
    REQUIRE(plugd.wait_for_log("died of SIGSEGV"));
    // The other worker (or the replacement) serves at once, with everything there.
    CHECK(ask_all(port, gets) == expected);
    CHECK(ask(port, "GET victim") == "before");
    CHECK(ask(port, "SIZE") == "101");
    CHECK(plugd.wait_for_log("a process died holding the lock of its shared state; rebuilt"));
    CHECK(ask(port, "SET victim after") == "OK");
    CHECK(ask(port, "INCR counter") == "1");
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 3));
    for (int i = 0; i < 10; ++i) {
        CHECK(ask_all(port, gets) == expected);
        CHECK(ask(port, "GET victim") == "after");
    }
    plugd.signal(SIGTERM);
    CHECK(plugd.wait_exit() == 0);
}

TEST_CASE(
    "workers: a reload that adds an instance gives it shared memory before any worker "
    "serves it, drops a removed one's, and refuses a shared_bytes its segment cannot hold") {
    temp_dir tmp;
    const auto two = [&](const std::string& served, const std::string& q_extra) {
        return R"({ "threads": 1, "workers": 2, "plugin_dir": ")" + test_plugin_dir().string() +
               R"(", "plugins": { "p": { "file": "kv" }, "q": { "file": "shared_writer")" +
               q_extra +
               R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": ")" +
               served + R"(" } ] })";
    };
    const auto cfg = tmp.write("server.json", config("kv"));
    plugd_process plugd{{"-c", cfg.string()}};
    const auto port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 2));
    CHECK(ask(port, "SET in p kept") == "OK");
    CHECK(has_segment(plugd.pid(), "p"));

    tmp.write("server.json", two("q", R"(, "shared_bytes": 1048576)"));
    auto r = run_plugd({"-s", "reload", "-c", cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(has_segment(plugd.pid(), "p"));
    CHECK(has_segment(plugd.pid(), "q"));
    CHECK(ask(port, "SET in q") == "OK");
    std::set<std::string> pids;
    for (int i = 0; i < 500 && pids.size() < 2; ++i) {
        const auto replies = ask_all(port, {"PID", "GET in"});
        REQUIRE(replies.size() == 2);
        pids.insert(replies[0]);
        CHECK(replies[1] == "q");
    }
    CHECK(pids.size() == 2);

    // q's segment was laid out for 1 MiB: 2 MiB needs a restart, and nothing changes.
    tmp.write("server.json", two("q", R"(, "shared_bytes": 2097152)"));
    r = run_plugd({"-s", "reload", "-c", cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("/plugins/q/shared_bytes: 2097152 bytes is more than the "
                                "1048576 bytes") != std::string::npos,
                  r.output);
    CHECK(ask(port, "GET in") == "q");

    // Back to p alone: q's segment goes; p's entries were there all along.
    tmp.write("server.json", config("kv"));
    r = run_plugd({"-s", "reload", "-c", cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    CHECK(has_segment(plugd.pid(), "p"));
    CHECK_FALSE(has_segment(plugd.pid(), "q"));
    CHECK(ask(port, "GET in") == "p kept");
    plugd.signal(SIGTERM);
    CHECK(plugd.wait_exit() == 0);
}

TEST_CASE(
    "workers: a master killed with SIGKILL leaves no shared memory behind once its workers "
    "have gone") {
    temp_dir tmp;
    plugd_process plugd{{"-c", tmp.write("server.json", config("kv")).string()}};
    const auto port = plugd.port();
    REQUIRE(plugd.wait_for_log("serving generation 1", 10s, 2));
    CHECK(ask(port, "SET k v") == "OK");
    const auto workers = children_of(plugd.pid());
    REQUIRE(workers.size() == 2);
    REQUIRE(has_segment(plugd.pid(), "p"));
    plugd.signal(SIGKILL);
    plugd.wait_exit();
    // Each worker is told by the kernel (SIGTERM, its parent-death signal), drains and goes.
    REQUIRE(plugd.wait_for_log("plugd stopped", 10s, 2));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (has_segment(plugd.pid(), "p") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    CHECK_FALSE(has_segment(plugd.pid(), "p"));
}

TEST_CASE(
    "workers: a worker whose master ended while it started removes the master's shared "
    "memory") {
    // A master killed before any of its workers mapped the segments: the worker that finds
    // it gone is the last process that knows their names.
    temp_dir tmp;
    plugd_process ended{{"--version"}};
    REQUIRE(ended.wait_exit() == 0);
    const pid_t master = ended.pid();  // no process has this pid now
    const std::string segment = "/plugd-" + std::to_string(master) + "-p";
    const int fd = ::shm_open(segment.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    REQUIRE_MESSAGE(fd >= 0, "shm_open " << segment << ": " << std::strerror(errno));
    ::close(fd);
    // What that master handed the worker it started.
    const std::string worker = "index=0;master=" + std::to_string(master) +
                               ";generation=1;status=" + (tmp.path() / "status").string() +
                               ";generation_file=" + (tmp.path() / "generation").string() +
                               ";user=;listen=";
    REQUIRE(::setenv("PLUGD_WORKER", worker.c_str(), 1) == 0);
    const auto r = run_plugd({"-c", tmp.write("server.json", config("kv")).string()});
    ::unsetenv("PLUGD_WORKER");
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("its master (pid " + std::to_string(master) +
                                ") ended while it started") != std::string::npos,
                  r.output);
    const bool left = has_segment(master, "p");
    if (left) ::shm_unlink(segment.c_str());  // nor does this test leave it
    CHECK_FALSE(left);
}
