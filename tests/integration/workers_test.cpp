// Supervised workers: a master process owns the sockets and runs worker processes; a
// worker's crash loses only its own connections, and a new worker takes its place.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

std::string config(const std::filesystem::path& dir, const std::string& file,
                   const std::string& plugin_config, const std::string& top) {
    return R"({ "threads": 1, )" + top + R"(, "plugin_dir": ")" + dir.string() +
           R"(", "plugins": { "p": { "file": ")" + file + R"(", "config": )" + plugin_config +
           R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ] })";
}

struct supervised {
    explicit supervised(const std::string& top, const std::string& file = "faulty",
                        const std::filesystem::path& dir = test_plugin_dir(),
                        const std::string& plugin_config = "{}")
        : cfg{tmp.write("server.json", config(dir, file, plugin_config, top))},
          process{{"-c", cfg.string()}},
          port{process.port()} {}

    // The pid of the worker a new connection reaches (faulty answers "pid").
    int pid_of(line_client& c) {
        c.send("pid\n");
        const auto reply = c.read_line();
        REQUIRE(reply);
        REQUIRE(reply->starts_with("faulty:pid="));
        return std::stoi(reply->substr(11));
    }

    // Sends one request at a time to a plugin that crashes on every request, until the
    // master has seen `n` workers die of it.
    void crash_workers(std::size_t n) {
        for (std::size_t crashes = 1; crashes <= n; ++crashes) {
            line_client c{port};
            c.send("x\n");
            CHECK_FALSE(c.read_line());
            REQUIRE(process.wait_for_log("died of SIGSEGV", 10s, crashes));
        }
    }

    std::size_t master_descriptors() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator{"/proc/" + std::to_string(process.pid()) + "/fd"})
            ++n;
        return n;
    }

    temp_dir tmp;
    std::filesystem::path cfg;
    plugd_process process;
    std::uint16_t port;
};

// Polls `condition` every 10 ms until it holds; false at the deadline.
template <class Condition>
bool eventually(Condition condition, milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// Whether `signo` waits, blocked or stopped, to be delivered to process `pid`.
bool signal_pending(pid_t pid, int signo) {
    std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("ShdPnd:") && !line.starts_with("SigPnd:")) continue;
        const auto mask = std::stoull(line.substr(7), nullptr, 16);
        if (mask & (1ull << (signo - 1))) return true;
    }
    return false;
}

// The generation a reload-status file (the master's, or a worker's) records; 0 if none.
std::uint64_t recorded_generation(const std::filesystem::path& file) {
    std::ifstream in{file};
    std::uint64_t attempt = 0, generation = 0;
    std::string outcome;
    in >> attempt >> outcome >> generation;
    return generation;
}

bool under_sanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return true;
#else
    return false;
#endif
}

}  // namespace

TEST_CASE(
    "workers: a crash loses only that worker's connections, and a new worker takes its place") {
    supervised s{R"("workers": 2)"};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    // Connections until both workers hold some (one accept queue, two processes).
    std::vector<line_client> clients;
    std::vector<int> owners;
    std::set<int> pids;
    std::vector<std::size_t> held;
    for (int i = 0; i < 64 && (pids.size() < 2 || clients.size() < 8); ++i) {
        if (pids.size() == 1 && clients.size() >= 4) {
            // Under load one worker may win every accept. Holding its only thread
            // ("threads": 1) leaves the next connections to the other; held again each
            // time it wins one more (it may accept before it reads the last hold).
            held.push_back(clients.size() - 1);
            clients.back().send("block 1000\n");
        }
        clients.emplace_back(s.port);
        owners.push_back(s.pid_of(clients.back()));
        pids.insert(owners.back());
    }
    REQUIRE(pids.size() == 2);
    for (const std::size_t h : held) REQUIRE(clients[h].read_line(10s) == "faulty:block 1000");
    const int victim = owners[0];

    const auto crashed_at = std::chrono::steady_clock::now();
    clients[0].send("crash\n");
    CHECK_FALSE(clients[0].read_line());  // the one request in flight there: lost
    REQUIRE(s.process.wait_for_log("died of SIGSEGV"));
    // New connections are answered throughout: the master kept the listening socket.
    for (int i = 0; i < 20; ++i) CHECK(ask(s.port, "new") == "faulty:new");
    // A new worker serves.
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 3));
    const auto replaced = std::chrono::steady_clock::now() - crashed_at;
    if (!under_sanitizer()) CHECK(replaced < 500ms);
    MESSAGE("a new worker served " << std::chrono::duration_cast<milliseconds>(replaced).count()
                                   << " ms after the crash");

    // Every connection of the other worker still answers; the crashed one's are closed.
    std::size_t answered = 0, lost = 0;
    for (std::size_t i = 1; i < clients.size(); ++i) {
        if (owners[i] == victim) {
            CHECK_FALSE(clients[i].read_line(2s));
            ++lost;
        } else {
            clients[i].send("still\n");
            CHECK(clients[i].read_line() == "faulty:still");
            ++answered;
        }
    }
    CHECK(answered > 0);
    const std::string log = s.process.log();
    CHECK(log.find("crash: SIGSEGV at address 0x0000000000000000 in plugin p generation 1") !=
          std::string::npos);
    CHECK(log.find("(pid " + std::to_string(victim) + ") died of SIGSEGV") != std::string::npos);
    MESSAGE("failed requests: 1 (the crashing one); connections lost with it: " << lost + 1);
}

TEST_CASE(
    "workers: -s reload reloads every worker in place with one outcome, -s stop stops them all") {
    supervised s{R"("workers": 2)", "greeting", bundled_plugin_dir()};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    s.tmp.write("server.json", config(bundled_plugin_dir(), "greeting", R"({ "prefix": "Hi, " })",
                                      R"("workers": 2)"));
    auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(r.output.find("reload: all 2 workers on generation 2") != std::string::npos);
    for (int i = 0; i < 16; ++i) CHECK(ask(s.port, "x") == "Hi, x");

    s.tmp.write("server.json", config(bundled_plugin_dir(), "greeting", R"({ "delay_ms": -1 })",
                                      R"("workers": 2)"));
    r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("delay_ms must be 0 or more") != std::string::npos, r.output);
    CHECK(ask(s.port, "y") == "Hi, y");

    r = run_plugd({"-s", "stop", "-c", s.cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(s.process.wait_exit() == 0);
    CHECK_FALSE(std::filesystem::exists(s.tmp.path() / "plugd.pid"));
}

TEST_CASE(
    "workers: the master refuses a setting only a restart applies before it numbers a "
    "generation or asks a worker") {
    supervised s{R"("workers": 2)", "greeting", bundled_plugin_dir()};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    std::string text = config(bundled_plugin_dir(), "greeting", "{}", R"("workers": 2)");
    text.replace(text.find("\"threads\": 1"), 12, "\"threads\": 2");
    s.tmp.write("server.json", text);
    auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("/threads: cannot change while running (\"1\" -> \"2\")") !=
                      std::string::npos,
                  r.output);
    // Said once, by the master: no worker tried it.
    CHECK(s.process.count_log("/threads: cannot change while running") == 1);

    // And no number was spent on it.
    s.tmp.write("server.json", config(bundled_plugin_dir(), "greeting", R"({ "prefix": "Hi, " })",
                                      R"("workers": 2)"));
    r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(r.output.find("reload: all 2 workers on generation 2") != std::string::npos,
                  r.output);
}

TEST_CASE("workers: a hundred respawns leak no descriptor in the master") {
    supervised s{R"("supervise": true)"};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 1));
    const auto before = s.master_descriptors();
    for (std::size_t i = 1; i <= 100; ++i) {
        line_client c{s.port};
        c.send("crash\n");
        CHECK_FALSE(c.read_line());
        REQUIRE_MESSAGE(s.process.wait_for_log("serving generation 1", 30s, i + 1),
                        "respawn " << i);
    }
    CHECK(s.master_descriptors() == before);
    CHECK(ask(s.port, "alive") == "faulty:alive");
}

TEST_CASE(
    "workers: a version that crashes after a reload is rolled back, and the next reload says so") {
    const std::string top =
        R"("workers": 2, "rollback_after_crashes": 3, "rollback_window_ms": 8000)";
    supervised s{top};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    // Only a generation that ran a whole window is one to go back to.
    // (A window long enough for three crashes and two respawns under a sanitizer.)
    REQUIRE(s.process.wait_for_log("master: generation 1 ran 8000 ms", 20s));
    s.tmp.write("server.json",
                config(test_plugin_dir(), "faulty", R"({ "crash_on_every_request": true })", top));
    auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    // Each request crashes the worker it reaches, until the third crash rolls back.
    s.crash_workers(3);
    REQUIRE_MESSAGE(
        s.process.wait_for_log("rolled back to generation 1 after 3 crashes of plugin p"),
        s.process.log());
    REQUIRE(s.process.wait_for_log("master: rollback done"));
    for (int i = 0; i < 16; ++i) CHECK(ask(s.port, "again") == "faulty:again");

    // The next reload (here with a fixed config) reports the rollback, and proceeds.
    s.tmp.write("server.json", config(test_plugin_dir(), "faulty", R"({ "answer": 1 })", top));
    r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(r.output.find("rolled back to generation 1 after 3 crashes of plugin p") !=
          std::string::npos);
    CHECK(ask(s.port, "fixed") == "faulty:fixed");
}

namespace {

enum class replaced_how { frozen_then_killed, killed_while_reloading };

// A reload whose signalled workers are all replaced before they answer, then an ordinary
// reload, then a crash loop: every reload gets a number of its own, the workers' status
// files say the master's number, and the rollback goes back to the last generation that
// ran a whole window (not to the crashing one under a reused number).
void replaced_workers_keep_an_honest_history(replaced_how how) {
    const std::string top =
        R"("workers": 2, "rollback_after_crashes": 3, "rollback_window_ms": 8000)";
    supervised s{top};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    const auto master_status = s.tmp.path() / "plugd.pid.reload";
    auto workers_agree = [&](std::uint64_t g) {
        return eventually(
            [&] {
                return recorded_generation(s.tmp.path() / "plugd.pid.workers" / "worker-0") == g &&
                       recorded_generation(s.tmp.path() / "plugd.pid.workers" / "worker-1") == g;
            },
            20s);
    };
    const std::uint64_t g1 = recorded_generation(master_status);
    REQUIRE(g1 == 1);
    REQUIRE(workers_agree(g1));

    // 1. Every worker is replaced before it answers the reload's signal.
    const auto workers = children_of(s.process.pid());
    REQUIRE(workers.size() == 2);
    if (how == replaced_how::frozen_then_killed) {
        for (const pid_t w : workers) REQUIRE(::kill(w, SIGSTOP) == 0);
        s.tmp.write("server.json", config(test_plugin_dir(), "faulty", R"({ "answer": 1 })", top));
        s.process.signal(SIGHUP);
        // The master has signalled them: their SIGHUP waits.
        REQUIRE(eventually([&] {
            for (const pid_t w : workers)
                if (!signal_pending(w, SIGHUP)) return false;
            return true;
        }));
    } else {
        // A constructor that takes a while: each worker is caught in its trial load.
        s.tmp.write("server.json", config(test_plugin_dir(), "faulty",
                                          R"({ "answer": 1, "construct_ms": 1500 })", top));
        s.process.signal(SIGHUP);
        REQUIRE(eventually([&] {
            for (const pid_t w : workers)
                if (children_of(w).empty()) return false;
            return true;
        }));
    }
    for (const pid_t w : workers) REQUIRE(::kill(w, SIGKILL) == 0);
    REQUIRE_MESSAGE(s.process.wait_for_log("reload: all 2 workers on generation", 20s),
                    s.process.log());
    REQUIRE(eventually([&] { return recorded_generation(master_status) != g1; }, 5s));
    const std::uint64_t g2 = recorded_generation(master_status);
    CHECK(g2 > g1);
    CHECK_MESSAGE(workers_agree(g2), s.process.log());
    CHECK(ask(s.port, "after") == "faulty:after");

    // 2. An ordinary reload: the next number, never the one before again.
    s.tmp.write("server.json", config(test_plugin_dir(), "faulty", R"({ "answer": 2 })", top));
    auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()}, 30s);
    REQUIRE_MESSAGE(r.status == 0, r.output);
    const std::uint64_t g3 = recorded_generation(master_status);
    CHECK(g3 > g2);
    CHECK_MESSAGE(workers_agree(g3), s.process.log());
    REQUIRE_MESSAGE(
        s.process.wait_for_log("master: generation " + std::to_string(g3) + " ran", 20s),
        s.process.log());

    // 3. A crash loop goes back to generation g3's files, and requests are answered again.
    s.tmp.write("server.json",
                config(test_plugin_dir(), "faulty", R"({ "crash_on_every_request": true })", top));
    r = run_plugd({"-s", "reload", "-c", s.cfg.string()}, 30s);
    REQUIRE_MESSAGE(r.status == 0, r.output);
    const std::uint64_t g4 = recorded_generation(master_status);
    CHECK(g4 > g3);
    s.crash_workers(3);
    REQUIRE_MESSAGE(s.process.wait_for_log("rolled back to generation " + std::to_string(g3) +
                                           " after 3 crashes of plugin p"),
                    s.process.log());
    REQUIRE(s.process.wait_for_log("master: rollback done"));
    std::size_t answered = 0;
    for (int i = 0; i < 20; ++i) answered += ask(s.port, "again") == "faulty:again";
    CHECK_MESSAGE(answered == 20, s.process.log());
    CHECK(eventually([&] { return recorded_generation(master_status) > g4; }, 5s));
    const std::uint64_t g5 = recorded_generation(master_status);
    CHECK_MESSAGE(workers_agree(g5), s.process.log());
}

}  // namespace

TEST_CASE(
    "workers: a reload whose workers were frozen, then killed before answering, gets a "
    "generation of its own, and a later crash loop rolls back to the last good one") {
    replaced_workers_keep_an_honest_history(replaced_how::frozen_then_killed);
}

TEST_CASE(
    "workers: a reload whose workers were killed while reloading gets a generation of its own, "
    "and a later crash loop rolls back to the last good one") {
    replaced_workers_keep_an_honest_history(replaced_how::killed_while_reloading);
}

TEST_CASE("workers: a crash loop with no generation that ran a whole window is not rolled back") {
    const std::string top =
        R"("workers": 2, "rollback_after_crashes": 3, "rollback_window_ms": 60000)";
    supervised s{top};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    s.tmp.write("server.json",
                config(test_plugin_dir(), "faulty", R"({ "crash_on_every_request": true })", top));
    auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    s.crash_workers(3);
    REQUIRE_MESSAGE(s.process.wait_for_log("there is none to roll back to"), s.process.log());
    CHECK(s.process.count_log("rolled back to generation") == 0);
}

namespace {

// The process that holds the server's end of `c` (connected to 127.0.0.1:`port` and
// answered, so accepted): the one among `candidates` with that socket open; -1 if none.
pid_t serving_process(const line_client& c, std::uint16_t port,
                      const std::vector<pid_t>& candidates) {
    sockaddr_in local{};
    socklen_t len = sizeof local;
    REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&local), &len) == 0);
    // /proc/net/tcp: "sl local_address rem_address st ... inode", ports in hex.
    std::ifstream table{"/proc/net/tcp"};
    std::string line, inode;
    std::getline(table, line);  // the header
    while (inode.empty() && std::getline(table, line)) {
        std::istringstream fields{line};
        std::string sl, ours, theirs, skip;
        fields >> sl >> ours >> theirs;
        for (int i = 0; i < 6; ++i) fields >> skip;
        const auto port_of = [](const std::string& a) {
            return std::stoul(a.substr(a.find(':') + 1), nullptr, 16);
        };
        // (A closed connection's TIME_WAIT entry, inode 0, may share the ports.)
        if (port_of(ours) == port && port_of(theirs) == ntohs(local.sin_port)) {
            fields >> inode;
            if (inode == "0") inode.clear();
        }
    }
    REQUIRE_MESSAGE(!inode.empty(), "no server-side socket for the connection");
    const std::string target = "socket:[" + inode + "]";
    for (const pid_t p : candidates) {
        std::error_code ec;
        for (const auto& fd :
             std::filesystem::directory_iterator{"/proc/" + std::to_string(p) + "/fd", ec}) {
            std::error_code gone;
            if (std::filesystem::read_symlink(fd.path(), gone) == target) return p;
        }
    }
    return -1;
}

// Whether process `pid` has an inotify instance open (file_watch's).
bool watches_files(pid_t pid) {
    for (const auto& fd :
         std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/fd"}) {
        std::error_code gone;
        if (std::filesystem::read_symlink(fd.path(), gone) == "anon_inode:inotify") return true;
    }
    return false;
}

// Asks `message` on fresh connections until every one of `workers` has answered (a worker
// that keeps winning the accepts is stopped meanwhile, so the others get the next ones);
// checks every answer is `expected`.
void every_worker_answers(plugd_process& p, std::uint16_t port, const std::vector<pid_t>& workers,
                          const std::string& message, const std::string& expected) {
    std::set<pid_t> answered;
    for (int i = 0; i < 64 && answered.size() < workers.size(); ++i) {
        paused_workers paused;
        if (i >= 8) {
            for (const pid_t w : answered) REQUIRE(paused.pause(w));
        }
        line_client c{port};
        c.send(message + "\n");
        const auto reply = c.read_line();
        REQUIRE_MESSAGE(reply, "connection " << i << ", answered by " << answered.size()
                                             << " workers so far; " << p.log());
        CHECK(*reply == expected);
        const pid_t by = serving_process(c, port, workers);
        REQUIRE(by > 0);
        answered.insert(by);
    }
    CHECK(answered.size() == workers.size());
}

// The Uid: line of /proc/<pid>/status ("Uid:\treal\teffective\tsaved\tfilesystem").
std::string uid_line(pid_t pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("Uid:")) return line;
    return {};
}

}  // namespace

TEST_CASE("workers: --watch makes the master reload every worker when server.json changes") {
    temp_dir tmp;
    const std::string top = R"("workers": 2)";
    const auto cfg = tmp.write("server.json", config(bundled_plugin_dir(), "greeting", "{}", top));
    plugd_process p{{"-c", cfg.string(), "--watch"}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1", 10s, 2));
    const auto workers = children_of(p.pid());
    REQUIRE(workers.size() == 2);
    // The master watches; the workers do not (or each would reload on its own).
    CHECK(watches_files(p.pid()));
    for (const pid_t w : workers) CHECK_FALSE(watches_files(w));
    every_worker_answers(p, port, workers, "x", "Hello, x");

    tmp.write("server.json",
              config(bundled_plugin_dir(), "greeting", R"({ "prefix": "Hi, " })", top));
    REQUIRE_MESSAGE(p.wait_for_log("reload: all 2 workers on generation 2"), p.log());
    CHECK(p.count_log("--watch: a watched file changed: reloading every worker") >= 1);
    every_worker_answers(p, port, workers, "x", "Hi, x");

    // Watched again after the reload: the next edit reaches every worker too.
    tmp.write("server.json",
              config(bundled_plugin_dir(), "greeting", R"({ "prefix": "Yo, " })", top));
    REQUIRE_MESSAGE(p.wait_for_log("reload: all 2 workers on generation 3"), p.log());
    every_worker_answers(p, port, workers, "x", "Yo, x");
    CHECK(children_of(p.pid()) == workers);  // reloaded in place, none restarted

    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
}

TEST_CASE("workers: --watch makes the master reload every worker when a plugin file is replaced") {
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "echo.so", plugins, "p.so");
    const auto cfg = tmp.write("server.json", config(plugins, "p", "{}", R"("workers": 2)"));
    plugd_process p{{"-c", cfg.string(), "--watch"}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1", 10s, 2));
    const auto workers = children_of(p.pid());
    REQUIRE(workers.size() == 2);
    every_worker_answers(p, port, workers, "x", "v1:x");

    // The file in plugin_dir, not the master's copy of it, is what is watched.
    install_plugin(test_plugin_dir() / "echo_v2.so", plugins, "p.so");
    REQUIRE_MESSAGE(p.wait_for_log("reload: all 2 workers on generation 2"), p.log());
    every_worker_answers(p, port, workers, "x", "v2:x");
}

TEST_CASE("workers: with \"user\" the master stays root and every worker runs as that user") {
    if (::geteuid() != 0) {
        return skip_test("not running as root: switching workers to a user cannot be tested here");
    }
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    temp_dir tmp;
    // The folder of the pid file: root's, reachable by nobody (the master keeps its copies
    // of each generation there, which the workers read). The plugins stay where the build
    // put them: only the master reads the originals.
    ::chmod(tmp.path().c_str(), 0755);
    const std::string top = R"("workers": 2, "user": "nobody")";
    const auto cfg = tmp.write("server.json", config(bundled_plugin_dir(), "greeting", "{}", top));
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    REQUIRE_MESSAGE(p.wait_for_log("serving generation 1", 10s, 2), p.log());
    CHECK(p.count_log("running as user nobody") == 2);

    const std::string as_nobody = "Uid:\t" + std::to_string(uid) + "\t" + std::to_string(uid) +
                                  "\t" + std::to_string(uid) + "\t" + std::to_string(uid);
    CHECK(uid_line(p.pid()) == "Uid:\t0\t0\t0\t0");
    const auto workers = children_of(p.pid());
    REQUIRE(workers.size() == 2);
    for (const pid_t w : workers) CHECK(uid_line(w) == as_nobody);
    every_worker_answers(p, port, workers, "x", "Hello, x");

    // What the workers read is readable by them and theirs alone, and not theirs to change.
    struct stat st {};
    const auto store = tmp.path() / "plugd.pid.generations";
    REQUIRE(::stat(store.c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK(st.st_gid == gid);
    CHECK((st.st_mode & 07777) == 0750);
    for (const auto& f : std::filesystem::recursive_directory_iterator{store}) {
        REQUIRE(::stat(f.path().c_str(), &st) == 0);
        CHECK_MESSAGE(st.st_uid == 0, f.path());
        CHECK_MESSAGE((st.st_mode & 022) == 0, f.path());
    }
    // What they write is theirs.
    const auto written = tmp.path() / "plugd.pid.workers";
    REQUIRE(::stat(written.c_str(), &st) == 0);
    CHECK(st.st_uid == uid);
    CHECK((st.st_mode & 07777) == 0700);

    tmp.write("server.json",
              config(bundled_plugin_dir(), "greeting", R"({ "prefix": "Hi, " })", top));
    const auto r = run_plugd({"-s", "reload", "-c", cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(r.output.find("reload: all 2 workers on generation 2") != std::string::npos);
    every_worker_answers(p, port, workers, "x", "Hi, x");

    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
    CHECK_FALSE(std::filesystem::exists(written));
    CHECK_FALSE(std::filesystem::exists(store));
}

TEST_CASE("workers: with \"user\" the master refuses a pid_file folder that user could change") {
    if (::geteuid() != 0) {
        return skip_test("not running as root: switching workers to a user cannot be tested here");
    }
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    temp_dir tmp;
    ::chmod(tmp.path().c_str(), 0755);
    REQUIRE(::chown(tmp.path().c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    const auto cfg = tmp.write("server.json", config(bundled_plugin_dir(), "greeting", "{}",
                                                     R"("workers": 2, "user": "nobody")"));
    const auto r = run_plugd({"-c", cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("/pid_file: the folder " + tmp.path().string() +
                                " is writable by user \"nobody\"") != std::string::npos,
                  r.output);
    CHECK(r.output.find("listening on") == std::string::npos);  // refused before binding
}

TEST_CASE("workers: a worker that cannot switch to \"user\" exits instead of serving as root") {
    temp_dir tmp;
    const auto cfg =
        tmp.write("server.json", config(bundled_plugin_dir(), "greeting", "{}", R"("workers": 2)"));
    // What a master hands a worker whose user has gone since the master checked it.
    const std::string worker = "index=0;master=" + std::to_string(::getpid()) +
                               ";generation=1;status=" + (tmp.path() / "status").string() +
                               ";generation_file=" + (tmp.path() / "generation").string() +
                               ";user=no-such-user-plugd;listen=";
    REQUIRE(::setenv("PLUGD_WORKER", worker.c_str(), 1) == 0);
    const auto r = run_plugd({"-c", cfg.string()});
    ::unsetenv("PLUGD_WORKER");
    CHECK(r.status == 1);
    CHECK_MESSAGE(
        r.output.find("cannot switch to user \"no-such-user-plugd\"") != std::string::npos,
        r.output);
    CHECK(r.output.find("a worker never serves as root") != std::string::npos);
    CHECK(r.output.find("configuration:") == std::string::npos);  // it read nothing
}

TEST_CASE("workers: a FIFO in place of a worker's status file does not block the master") {
    // With "user" the workers' user owns that folder: what it leaves there must not wedge
    // (or, by a link, feed root's files to) the master that reads it.
    supervised s{R"("workers": 2)", "greeting", bundled_plugin_dir()};
    REQUIRE(s.process.wait_for_log("serving generation 1", 10s, 2));
    const auto status = s.tmp.path() / "plugd.pid.workers" / "worker-0";
    REQUIRE(std::filesystem::remove(status));
    REQUIRE(::mkfifo(status.c_str(), 0600) == 0);
    const auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(r.output.find("reload: all 2 workers on generation 2") != std::string::npos);
}
