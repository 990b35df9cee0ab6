// Faulty plugins: a stall is reported naming the plugin, a crash's last words name it,
// and a plugin that crashes while loading is refused by a trial load instead of ending
// the server.
#include <doctest/doctest.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include <optional>
#include <string>
#include <thread>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

// A plugd with one listener routed to the `faulty` test plugin, and `limits` as given.
struct faulty_server : one_listener_server {
    explicit faulty_server(const std::string& config = "{}", const std::string& limits = "{}")
        : one_listener_server{"faulty", config, "line", limits} {}
};

}  // namespace

TEST_CASE(
    "faults: a handler that blocks its thread for 1 s is reported once, with the plugin and the "
    "total") {
    faulty_server s{"{}", R"({ "stall_warn_ms": 200 })"};
    line_client c{s.port};
    c.send("block 1000\n");
    CHECK(c.read_line(10s) == "faulty:block 1000");
    REQUIRE_MESSAGE(s.process.wait_for_log("stall ended: worker thread"), s.process.log());
    const std::string log = s.process.log();
    CHECK(s.process.count_log("has not returned to its event loop") == 1);
    const auto start = log.find("has not returned to its event loop");
    const auto start_line = log.substr(start, log.find('\n', start) - start);
    CHECK_MESSAGE(start_line.find("in plugin p generation 1") != std::string::npos, start_line);
    CHECK(start_line.find("request from 127.0.0.1:") != std::string::npos);
    CHECK(start_line.find("on listener main") != std::string::npos);
    const auto end = log.find("stall ended: worker thread");
    const auto end_line = log.substr(end, log.find('\n', end) - end);
    const auto ms_at = end_line.find("was stalled for ") + 16;
    const int total = std::stoi(end_line.substr(ms_at));
    CHECK(total >= 950);
    CHECK(total < 3000);
    CHECK(end_line.find("in plugin p generation 1") != std::string::npos);
}

TEST_CASE("faults: a handler that keeps its thread busy for 600 ms is a stall, not starvation") {
    faulty_server s{"{}", R"({ "stall_warn_ms": 200 })"};
    line_client c{s.port};
    c.send("spin 600\n");
    CHECK(c.read_line(10s) == "faulty:spin 600");
    REQUIRE_MESSAGE(s.process.wait_for_log("stall ended: worker thread"), s.process.log());
    CHECK(s.process.count_log("has not returned to its event loop") == 1);
    CHECK(s.process.count_log("starved:") == 0);
}

TEST_CASE("faults: a handler that awaits sleep_for 1 s stalls nothing") {
    faulty_server s{"{}", R"({ "stall_warn_ms": 200 })"};
    line_client c{s.port};
    c.send("sleep 1000\n");
    CHECK(c.read_line(10s) == "faulty:sleep 1000");
    // A later, known line: everything the monitor would have logged came before it.
    c.send("block 400\n");
    CHECK(c.read_line(10s) == "faulty:block 400");
    REQUIRE(s.process.wait_for_log("stall ended: worker thread"));
    CHECK(s.process.count_log("has not returned to its event loop") == 1);
}

TEST_CASE(
    "faults: a crashing handler's last log line names the plugin, the client and the signal") {
    faulty_server s;
    line_client c{s.port};
    c.send("crash\n");
    s.process.wait_exit(10s);
    CHECK(s.process.killed_by() == SIGSEGV);  // the report does not change how it dies
    REQUIRE(s.process.wait_for_log("crash: SIGSEGV"));
    const std::string log = s.process.log();
    const auto at = log.find("crash: SIGSEGV");
    const auto line = log.substr(at, log.find('\n', at) - at);
    CHECK_MESSAGE(line.find("in plugin p generation 1") != std::string::npos, line);
    CHECK(line.find("request from 127.0.0.1:") != std::string::npos);
    CHECK(line.find("on listener main") != std::string::npos);
    CHECK(log.find("backtrace follows", at) != std::string::npos);
}

TEST_CASE("faults: abort() in a handler is reported the same way") {
    faulty_server s;
    line_client c{s.port};
    c.send("abort\n");
    s.process.wait_exit(10s);
    CHECK(s.process.killed_by() == SIGABRT);
    REQUIRE(s.process.wait_for_log("crash: SIGABRT"));
    CHECK(s.process.log().find("crash: SIGABRT in plugin p generation 1") != std::string::npos);
}

TEST_CASE(
    "faults: a plugin that crashes in its constructor is refused by a trial load, the server "
    "serves on") {
    faulty_server s;
    s.tmp.write("server.json", one_listener_config(test_plugin_dir(), "faulty",
                                                   R"({ "crash_construction": true })"));
    const auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("plugin \"p\"") != std::string::npos, r.output);
    CHECK(r.output.find("crashed with SIGSEGV while loading and starting in a trial process") !=
          std::string::npos);
    CHECK(ask(s.port, "still") == "faulty:still");
    // The child's own report names the plugin it was trying.
    CHECK(s.process.wait_for_log("crash: SIGSEGV at address 0x0000000000000000 in plugin p"));
}

TEST_CASE("faults: a plugin that crashes in its constructor at start-up is refused, naming it") {
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json",
        one_listener_config(test_plugin_dir(), "faulty", R"({ "crash_construction": true })"));
    plugd_process p{{"-c", cfg.string()}};
    CHECK(p.wait_exit() == 1);
    CHECK_MESSAGE(
        p.log().find("crashed with SIGSEGV while loading and starting in a trial process") !=
            std::string::npos,
        p.log());
}

TEST_CASE(
    "faults: a thread a plugin left running crashes plugd after a reload unloads it, and the "
    "report names the plugin, its generation and the likely cause, then a backtrace") {
    one_listener_server s{"stray_thread"};
    CHECK(ask(s.port, "x") == "stray:x");
    // The listener moves to another plugin: nothing holds p's version, so it is unloaded
    // at once, and its thread's next round runs into unmapped code.
    s.tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo"));
    s.process.signal(SIGHUP);
    s.process.wait_exit(20s);
    REQUIRE_MESSAGE(s.process.killed_by() == SIGSEGV, s.process.log());
    // (The log's own "unloaded" line may not come first: the thread can crash before the
    // control thread writes it. The report says so itself.)
    const std::string log = s.process.log();
    const auto at = log.find("crash: SIGSEGV");
    REQUIRE_MESSAGE(at != std::string::npos, log);
    const auto line_end = log.find('\n', at);
    const auto line = log.substr(at, line_end - at);
    CHECK_MESSAGE(line.find("in the code of plugin p generation 1, which a reload had unloaded") !=
                      std::string::npos,
                  line);
    CHECK(line.find("a thread or callback the plugin started itself") != std::string::npos);
    CHECK(line.find("in the core") == std::string::npos);
    // Then the backtrace: frames (the handler's at least), whether or not unwinding could
    // go on into the unmapped code.
    const std::string after = line_end == std::string::npos ? "" : log.substr(line_end + 1);
    CHECK_MESSAGE(after.find("[0x") != std::string::npos, after);
}

namespace {

// The first CPU this process may run on.
int first_allowed_cpu() {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    REQUIRE(::sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &allowed)) return cpu;
    FAIL("no CPU allowed");
    return -1;
}

// Pins the calling thread to `cpu`; with `realtime`, also gives it SCHED_FIFO (needs
// CAP_SYS_NICE or an RLIMIT_RTPRIO: the test fails saying so otherwise). A SCHED_FIFO
// thread that never sleeps leaves ordinary threads on its CPU only what the kernel's
// real-time throttling reserves for them (sched_rt_runtime_us: 50 ms a second).
void pin_calling_thread(int cpu, bool realtime) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0);
    if (realtime) {
        sched_param priority{};
        priority.sched_priority = 1;
        REQUIRE_MESSAGE(::sched_setscheduler(0, SCHED_FIFO, &priority) == 0,
                        "this test starves plugd with a SCHED_FIFO thread: run it as root or "
                        "with CAP_SYS_NICE");
    }
}

}  // namespace

TEST_CASE(
    "faults: a worker thread starved of CPU while idle is reported as starved, never as a "
    "stall, and a blocking handler is still a stall") {
    const int cpu = first_allowed_cpu();
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json", one_listener_config(test_plugin_dir(), "faulty", "{}", "line",
                                                     R"({ "stall_warn_ms": 100 })"));
    // plugd starts from a thread pinned to one CPU and inherits that: a busy real-time
    // thread on that CPU then leaves plugd's threads (workers and monitor alike) runnable
    // but not scheduled for most of each second, while plugd does nothing.
    std::optional<plugd_process> plugd;
    std::thread{[&] {
        pin_calling_thread(cpu, false);
        plugd.emplace(std::vector<std::string>{"-c", cfg.string()});
    }}.join();
    const auto port = plugd->port();
    CHECK(ask(port, "before") == "faulty:before");

    // The monitor shares the starved CPU: it sees the worker late only when the scheduler's
    // real-time throttling gives the CPU's ordinary threads a slice (50 ms a second) and
    // the monitor, not the worker, gets it first. Other processes on the CPU (a parallel
    // test) compete for those slices too, so the competition comes in bursts until the
    // report appears, at most eight.
    bool starved = false;
    for (int burst = 0; burst < 8 && !starved; ++burst) {
        std::thread hog{[&] {
            pin_calling_thread(cpu, true);
            const auto until = std::chrono::steady_clock::now() + 1500ms;
            while (std::chrono::steady_clock::now() < until) {
            }
        }};
        hog.join();
        starved = plugd->wait_for_log("starved: worker thread", 2s);
    }
    REQUIRE_MESSAGE(starved, plugd->log());
    CHECK_MESSAGE(plugd->count_log("has not returned to its event loop") == 0, plugd->log());
    CHECK(plugd->count_log("stall ended") == 0);

    // Without the competition, a handler that blocks its thread is a stall, as before.
    line_client c{port};
    c.send("block 400\n");
    CHECK(c.read_line(10s) == "faulty:block 400");
    REQUIRE_MESSAGE(plugd->wait_for_log("stall ended: worker thread"), plugd->log());
    CHECK(plugd->count_log("has not returned to its event loop") == 1);
}
