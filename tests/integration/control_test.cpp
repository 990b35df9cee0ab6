// The control plane: `plugd -s` signals only the plugd that holds the pid file and serves
// the given configuration; a pid file is never shared; a restart binds at once.
#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>

#include "plugd_process.hpp"

extern char** environ;

using namespace plugd::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string on_port(std::string config, std::uint16_t port) {
    config.replace(config.find("\"port\": 0"), 9, "\"port\": " + std::to_string(port));
    return config;
}

// A live process that is not plugd (as root, anything a stale pid file may name): a
// signal from `plugd -s` would end it.
class bystander {
  public:
    bystander() {
        char sleep[] = "sleep";
        char seconds[] = "60";
        char* argv[] = {sleep, seconds, nullptr};
        REQUIRE(::posix_spawnp(&pid_, "sleep", nullptr, nullptr, argv, environ) == 0);
    }
    ~bystander() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }
    bool alive() const {
        int status = 0;
        return ::waitpid(pid_, &status, WNOHANG) == 0;
    }

  private:
    pid_t pid_ = -1;
};

struct serving {
    explicit serving(const std::string& name = "server.json", const std::string& extra = "") {
        std::string text = one_listener_config(test_plugin_dir(), "echo");
        if (!extra.empty()) text.replace(0, 1, "{ " + extra + ",");
        cfg = tmp.write(name, text);
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        port = process->port();
        REQUIRE(process->wait_for_log("serving generation 1"));
    }
    temp_dir tmp;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0;
};

}  // namespace

TEST_CASE("a restart right after a stop or a crash with clients connected binds the same port") {
    temp_dir tmp;
    const std::string config = one_listener_config(test_plugin_dir(), "echo");
    const std::uint16_t port = unused_fixed_port();
    for (const int signo : {SIGTERM, SIGKILL}) {
        CAPTURE(signo);
        plugd_process p{{"-c", tmp.write("server.json", on_port(config, port)).string()}};
        CHECK(p.port() == port);
        REQUIRE_MESSAGE(p.wait_for_log("serving generation 1"), p.log());
        line_client idle{port};
        idle.send("hello\n");
        REQUIRE(idle.read_line() == "v1:hello");
        // The server closes first, so its side of the connection lingers in TIME_WAIT.
        p.signal(signo);
        CHECK(idle.read_to_eof() == "");
        p.wait_exit();
    }
    plugd_process again{{"-c", tmp.write("server.json", on_port(config, port)).string()}};
    CHECK(again.port() == port);
    CHECK_MESSAGE(again.wait_for_log("serving generation 1"), again.log());
}

TEST_CASE("-s refuses a stale pid file naming an unrelated live process, and signals nothing") {
    temp_dir tmp;
    const auto cfg = tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo"));
    bystander other;
    tmp.write("plugd.pid", std::to_string(other.pid()) + "\n");
    for (const char* action : {"reload", "stop"}) {
        const auto r = run_plugd({"-s", action, "-c", cfg.string()});
        CHECK(r.status == 1);
        CHECK_MESSAGE(
            contains(r.output, (tmp.path() / "plugd.pid").string() + " (the /pid_file of " +
                                   cfg.string() + ") is stale: it names pid " +
                                   std::to_string(other.pid()) + ", but no running plugd holds it"),
            r.output);
        CHECK(contains(r.output, "nothing was signalled"));
        CHECK_FALSE(contains(r.output, "stopped"));
        CHECK(other.alive());
    }
}

TEST_CASE("a stale pid file is taken over at start, and -s then reaches the new server") {
    temp_dir tmp;
    tmp.write("plugd.pid", "1\n");
    const auto cfg = tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo"));
    plugd_process p{{"-c", cfg.string()}};
    REQUIRE_MESSAGE(p.wait_for_log("serving generation 1"), p.log());
    const auto r = run_plugd({"-s", "stop", "-c", cfg.string()});
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK(contains(r.output, "stopped (pid " + std::to_string(p.pid()) + ")"));
    CHECK(p.wait_exit() == 0);
    CHECK_FALSE(std::filesystem::exists(tmp.path() / "plugd.pid"));
}

TEST_CASE("-s reload sent while plugd is still starting waits for it, then reloads it") {
    temp_dir tmp;
    // What a killed plugd leaves behind: its status file, with a later attempt than the new
    // server's first reload. Taken for the new server's, it would hide that reload's answer.
    tmp.write("plugd.pid.reload",
              "7 ok 3 0\nreload: generation 3\n" + (tmp.path() / "server.json").string() + "\n");
    const auto cfg = tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo",
                                                                  R"({ "construct_ms": 1000 })"));
    plugd_process p{{"-c", cfg.string()}};
    // The constructor holds start-up for a second: the pid file is held, the status file
    // not yet written.
    REQUIRE_MESSAGE(p.wait_for_log("plugin p: constructing"), p.log());
    const auto r = run_plugd({"-s", "reload", "-c", cfg.string()}, 30s);
    CHECK_MESSAGE(r.status == 0, r.output);
    CHECK_MESSAGE(contains(r.output, "plugd: reload: generation 2"), r.output);
    CHECK(p.count_log("serving generation 1") == 1);
}

TEST_CASE("a second plugd with the same pid file refuses to start, naming the pid and the file") {
    serving a{"a.json"};
    std::string b_text = one_listener_config(test_plugin_dir(), "echo");
    const auto b = a.tmp.write("b.json", b_text);
    const auto r = run_plugd({"-c", b.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.output, "pid file " + (a.tmp.path() / "plugd.pid").string() +
                                         ": already held by another plugd (pid " +
                                         std::to_string(a.process->pid()) + ")"),
                  r.output);
    CHECK(contains(r.output, "each server needs its own /pid_file"));
    CHECK_FALSE(contains(r.output, "listening on"));  // refused before binding anything

    // -s with b.json finds a's pid file, and sees that a serves another configuration.
    for (const char* action : {"reload", "stop"}) {
        const auto s = run_plugd({"-s", action, "-c", b.string()});
        CHECK(s.status == 1);
        CHECK_MESSAGE(
            contains(s.output, "pid " + std::to_string(a.process->pid()) + " holds " +
                                   (a.tmp.path() / "plugd.pid").string() + " but serves " +
                                   a.cfg.string() + ", not " + b.string()),
            s.output);
    }
    CHECK(a.process->count_log("reload") == 0);
    line_client c{a.port};
    c.send("still\n");
    CHECK(c.read_line() == "v1:still");
}

TEST_CASE("pid_file cannot change by reload, and -s says what to do when it was changed") {
    serving s;
    const std::string moved = R"("pid_file": "elsewhere.pid")";
    std::string text = one_listener_config(test_plugin_dir(), "echo");
    text.replace(0, 1, "{ " + moved + ",");
    s.tmp.write("server.json", text);
    s.process->signal(SIGHUP);
    REQUIRE(s.process->wait_for_log("reload failed: "));
    CHECK(contains(s.process->log(), "/pid_file: cannot change while running"));
    CHECK(std::filesystem::exists(s.tmp.path() / "plugd.pid"));

    const auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.output, (s.tmp.path() / "elsewhere.pid").string() + " does not exist"),
                  r.output);
    CHECK(contains(r.output, "If /pid_file was changed since it started, put the old value back"));
}

TEST_CASE("-s reload reports a server that dies during the reload as soon as it is gone") {
    serving s;
    // A slow constructor keeps the reload running while the server is killed under it.
    s.tmp.write("server.json",
                one_listener_config(test_plugin_dir(), "echo", R"({ "construct_ms": 3000 })"));
    plugd_process reload{PLUGD_BINARY, {"-s", "reload", "-c", s.cfg.string()}};
    REQUIRE(s.process->wait_for_log("plugin p: constructing"));
    ::kill(s.process->pid(), SIGKILL);
    // -s's own deadline is 60 s: only noticing the exit answers within this one.
    REQUIRE(reload.wait_exit(20s) == 1);
    CHECK_MESSAGE(
        contains(reload.log(), "pid " + std::to_string(s.process->pid()) +
                                   " exited during the reload without reporting an outcome"),
        reload.log());
}

TEST_CASE("a plugin that crashes in its constructor costs a refused reload, not the server") {
    serving s;
    s.tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo",
                                                   R"({ "crash_construction": true })"));
    const auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()}, 20s);
    CHECK(r.status == 1);
    CHECK_MESSAGE(
        contains(r.output, "crashed with SIGABRT while loading and starting in a trial process"),
        r.output);
    line_client c{s.port};
    c.send("alive\n");
    CHECK(c.read_line() == "v1:alive");
}

TEST_CASE("a config nested 100,000 deep sent by -s reload is refused, and the server serves on") {
    serving s;
    s.tmp.write("server.json",
                R"({ "plugins": )" + std::string(100'000, '[') + std::string(100'000, ']') + " }");
    const auto r = run_plugd({"-s", "reload", "-c", s.cfg.string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.output, "nesting deeper than 64 levels"), r.output);
    line_client c{s.port};
    c.send("alive\n");
    CHECK(c.read_line() == "v1:alive");
}

TEST_CASE("two plugd share a port with reuse_port: both serve, and one stopping leaves the other") {
    const auto port = unused_fixed_port();
    auto config = [&](const std::string& prefix) {
        return R"({ "threads": 1, "plugin_dir": ")" + bundled_plugin_dir().string() +
               R"(", "plugins": { "g": { "file": "greeting", "config": { "prefix": ")" + prefix +
               R"(" } } }, "listeners": [ { "name": "main", "port": )" + std::to_string(port) +
               R"(, "plugin": "g", "reuse_port": true } ] })";
    };
    temp_dir a_dir, b_dir;
    plugd_process a{{"-c", a_dir.write("server.json", config("A:")).string()}};
    REQUIRE(a.wait_for_log("serving generation 1"));
    plugd_process b{{"-c", b_dir.write("server.json", config("B:")).string()}};
    REQUIRE_MESSAGE(b.wait_for_log("serving generation 1"), b.log());
    // The kernel hashes each new connection to one of the two: 64 reach both but for a
    // chance of 2^-63.
    int from_a = 0, from_b = 0;
    for (int i = 0; i < 64; ++i) {
        const auto reply = ask(port, "x");
        from_a += reply == "A:x";
        from_b += reply == "B:x";
    }
    CHECK(from_a + from_b == 64);
    CHECK(from_a > 0);
    CHECK(from_b > 0);
    a.signal(SIGTERM);
    REQUIRE(a.wait_exit() == 0);
    for (int i = 0; i < 16; ++i) CHECK(ask(port, "y") == "B:y");
}

TEST_CASE(
    "without reuse_port, a second plugd on a port in use is refused, saying how to share it") {
    serving s;
    temp_dir other;
    std::string text = one_listener_config(test_plugin_dir(), "echo");
    text.replace(text.find("\"port\": 0"), 9, "\"port\": " + std::to_string(s.port));
    plugd_process second{{"-c", other.write("server.json", text).string()}};
    CHECK(second.wait_exit() == 1);
    CHECK_MESSAGE(contains(second.log(), "\"reuse_port\": true"), second.log());
}
