// systemd integration without a running systemd: socket activation through
// systemd-socket-activate (it passes LISTEN_FDS as systemd does), and Type=notify through a
// datagram socket the test binds and names in NOTIFY_SOCKET.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

const std::filesystem::path socket_activate = "/usr/bin/systemd-socket-activate";

// The socket a service manager listens on for sd_notify messages.
class notify_socket {
  public:
    explicit notify_socket(const std::filesystem::path& path) : path_{path} {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path.string().size() < sizeof addr.sun_path);
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~notify_socket() { ::close(fd_); }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // The next message holding the line `field` (e.g. "READY=1"); the messages before it
    // are kept in received(). nullopt at the deadline.
    std::optional<std::string> wait_for(const std::string& field, milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count()))) <= 0)
                return std::nullopt;
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return std::nullopt;
            std::string message{buf, static_cast<std::size_t>(n)};
            received_.push_back(message);
            if (has_line(message, field)) return message;
        }
    }

    // Reads every message already waiting; returns how many there were.
    std::size_t drain() {
        std::size_t n = 0;
        while (wait_for("\n", 0ms)) ++n;
        return n;
    }

    const std::vector<std::string>& received() const { return received_; }

    static bool has_line(const std::string& message, const std::string& line) {
        std::istringstream in{message};
        for (std::string l; std::getline(in, l);) {
            if (l == line) return true;
        }
        return false;
    }
    // The value of `name=` in `message`, or "".
    static std::string value(const std::string& message, const std::string& name) {
        std::istringstream in{message};
        for (std::string l; std::getline(in, l);) {
            if (l.starts_with(name + "=")) return l.substr(name.size() + 1);
        }
        return "";
    }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<std::string> received_;
};

// Listener "main" on `port` and "other" on an ephemeral port, both serving echo.
std::string config(std::uint16_t port, const std::string& top = "") {
    return R"({ "threads": 2, )" + top + R"( "plugin_dir": ")" + test_plugin_dir().string() +
           R"(", "plugins": { "p": { "file": "echo" } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": )" +
           std::to_string(port) +
           R"(, "plugin": "p" }, { "name": "other", "address": "127.0.0.1", "port": 0, "plugin": "p" } ] })";
}

// plugd (with `plugd_args`) under systemd-socket-activate listening on 127.0.0.1:`port`
// with the socket named `fdname`, and NOTIFY_SOCKET naming `notify`.
plugd_process activated(std::uint16_t port, const std::string& fdname,
                        const std::filesystem::path& notify, std::vector<std::string> plugd_args) {
    std::vector<std::string> args{"-l", "127.0.0.1:" + std::to_string(port), "--fdname=" + fdname,
                                  "-E", "NOTIFY_SOCKET=" + notify.string(),  PLUGD_BINARY};
    args.insert(args.end(), plugd_args.begin(), plugd_args.end());
    return plugd_process{socket_activate.string(), std::move(args)};
}

// systemd-socket-activate starts plugd at the first connection, as a .socket unit without
// a service started does: this makes it, once the socket listens. The request it sends is
// answered once plugd serves.
line_client first_connection(plugd_process& p, std::uint16_t port) {
    REQUIRE(p.wait_for_log("Listening on 127.0.0.1:"));
    line_client c{port};
    c.send("first\n");
    return c;
}

// "socket:[INODE]" for descriptor `fd` of `pid`, reduced to INODE.
std::string socket_inode(pid_t pid, int fd) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(
        "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
    const std::string text = ec ? "" : target.string();
    if (!text.starts_with("socket:[")) return "";
    return text.substr(8, text.size() - 9);
}

// How many descriptors of `pid` are the socket `inode`.
std::size_t descriptors_of(pid_t pid, const std::string& inode) {
    std::size_t n = 0;
    for (const auto& e :
         std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/fd"}) {
        if (socket_inode(pid, std::stoi(e.path().filename())) == inode) ++n;
    }
    return n;
}

bool close_on_exec(pid_t pid, int fd) {
    std::ifstream info{"/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd)};
    for (std::string line; std::getline(info, line);) {
        if (line.starts_with("flags:")) return (std::stoul(line.substr(6), nullptr, 8) & O_CLOEXEC);
    }
    return false;
}

std::string environment_of(pid_t pid) {
    std::ifstream in{"/proc/" + std::to_string(pid) + "/environ", std::ios::binary};
    std::string text{std::istreambuf_iterator<char>{in}, {}};
    for (char& c : text) {
        if (c == '\0') c = '\n';
    }
    return "\n" + text;
}

// The messages around a reload, a failed reload and a stop, the same with and without
// workers. `serving`: STATUS= after the reload.
void reload_then_stop(plugd_process& p, notify_socket& notify, const std::filesystem::path& cfg,
                      const std::string& serving) {
    p.signal(SIGHUP);
    const auto reloading = notify.wait_for("RELOADING=1");
    INFO(p.log());
    REQUIRE(reloading);
    CHECK(std::stoull(notify_socket::value(*reloading, "MONOTONIC_USEC")) > 0);
    const auto ready = notify.wait_for("READY=1");
    REQUIRE(ready);
    CHECK(notify_socket::value(*ready, "STATUS") == serving);
    // A reload that fails leaves the server serving: READY=1 again, and STATUS= says so.
    std::ofstream{cfg, std::ios::trunc} << "{ not json";
    p.signal(SIGHUP);
    REQUIRE(notify.wait_for("RELOADING=1"));
    const auto refused = notify.wait_for("READY=1");
    REQUIRE(refused);
    const std::string status = notify_socket::value(*refused, "STATUS");
    CHECK(status.starts_with("reload failed ("));
    CHECK(status.find(serving) != std::string::npos);
    p.signal(SIGTERM);
    const auto stopping = notify.wait_for("STOPPING=1");
    REQUIRE(stopping);
    CHECK(notify_socket::value(*stopping, "STATUS").find("stopping") != std::string::npos);
    CHECK(p.wait_exit() == 0);
}

}  // namespace

TEST_CASE(
    "under systemd-socket-activate plugd serves on the passed socket and notifies "
    "READY, RELOADING and READY around a reload, and STOPPING") {
    if (!std::filesystem::exists(socket_activate))
        return skip_test("systemd-socket-activate is not installed (apt-get install systemd)");
    temp_dir tmp;
    notify_socket notify{tmp.path() / "notify"};
    const auto port = unused_fixed_port();
    // The configuration names another port: the .socket unit's address wins, and says so.
    const auto cfg = tmp.write("server.json", config(unused_fixed_port()));
    plugd_process p = activated(port, "main", notify.path(), {"-c", cfg.string()});
    line_client first = first_connection(p, port);
    const auto ready = notify.wait_for("READY=1");
    INFO(p.log());
    REQUIRE(ready);
    CHECK(notify_socket::value(*ready, "STATUS") == "serving generation 1");
    CHECK(first.read_line() == "v1:first");
    CHECK(p.port() == port);
    CHECK(p.log().find("on the socket systemd passed (descriptor 3), not bound by plugd") !=
          std::string::npos);
    CHECK(p.log().find("is ignored: the .socket unit's ListenStream= decides") !=
          std::string::npos);
    // Not bound by plugd: each of its 2 threads accepts on a duplicate of descriptor 3
    // (binding, each would have a socket of its own).
    const std::string passed = socket_inode(p.pid(), 3);
    REQUIRE_FALSE(passed.empty());
    CHECK(descriptors_of(p.pid(), passed) == 3);
    CHECK(close_on_exec(p.pid(), 3));
    line_client c{port};
    c.send("hello\n");
    CHECK(c.read_line() == "v1:hello");
    // A listener systemd passed no socket for binds as before.
    line_client o{p.port("other")};
    o.send("other\n");
    CHECK(o.read_line() == "v1:other");
    CHECK(p.log().find("listener other: takes") == std::string::npos);
    reload_then_stop(p, notify, cfg, "serving generation 2");
    // Nothing before READY=1 said it was ready, and STATUS always named a generation.
    for (const auto& m : notify.received()) {
        CHECK(notify_socket::value(m, "STATUS").find("generation") != std::string::npos);
    }
}

TEST_CASE(
    "with workers the master takes the passed socket, its workers accept on it, and only "
    "the master notifies") {
    if (!std::filesystem::exists(socket_activate))
        return skip_test("systemd-socket-activate is not installed (apt-get install systemd)");
    temp_dir tmp;
    notify_socket notify{tmp.path() / "notify"};
    const auto port = unused_fixed_port();
    // Another port in the configuration: each worker too must take the master's socket from
    // systemd whatever the configuration says (it knows it is systemd's).
    const auto cfg = tmp.write("server.json", config(unused_fixed_port(), R"("workers": 2,)"));
    plugd_process p = activated(port, "main", notify.path(), {"-c", cfg.string()});
    line_client first = first_connection(p, port);
    const auto ready = notify.wait_for("READY=1");
    INFO(p.log());
    REQUIRE(ready);
    CHECK(notify_socket::value(*ready, "STATUS") == "serving generation 1 with 2 workers");
    // Sent once both workers had recorded their start (what `plugd -s` reads too).
    CHECK(std::filesystem::exists(tmp.path() / "plugd.pid.workers" / "worker-0"));
    CHECK(std::filesystem::exists(tmp.path() / "plugd.pid.workers" / "worker-1"));
    CHECK(first.read_line() == "v1:first");
    CHECK(p.log().find("master: worker") == std::string::npos);  // none died
    CHECK(p.wait_for_log("is ignored: the .socket unit's ListenStream= decides", 5s, 2));
    const std::string passed = socket_inode(p.pid(), 3);
    REQUIRE_FALSE(passed.empty());
    CHECK(close_on_exec(p.pid(), 3));
    const auto workers = children_of(p.pid());
    REQUIRE(workers.size() == 2);
    for (const pid_t w : workers) {
        CAPTURE(w);
        // Its 2 threads accept on duplicates of the master's socket, which is systemd's.
        CHECK(socket_inode(w, 3) == passed);
        CHECK(descriptors_of(w, passed) == 3);
        CHECK(close_on_exec(w, 3));  // a plugin's child process does not inherit it
        const std::string env = environment_of(w);
        for (const char* name : {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                                 "WATCHDOG_USEC", "WATCHDOG_PID"}) {
            CHECK_MESSAGE(env.find("\n" + std::string{name} + "=") == std::string::npos, name);
        }
    }
    for (int i = 0; i < 20; ++i) {
        line_client c{port};
        c.send("hi\n");
        CHECK(c.read_line() == "v1:hi");
    }
    reload_then_stop(p, notify, cfg, "serving generation 2 with 2 workers");
}

TEST_CASE(
    "a socket passed by systemd under a name no listener has is refused at start, naming "
    "it and the listeners") {
    if (!std::filesystem::exists(socket_activate))
        return skip_test("systemd-socket-activate is not installed (apt-get install systemd)");
    temp_dir tmp;
    notify_socket notify{tmp.path() / "notify"};
    const auto port = unused_fixed_port();
    const auto cfg = tmp.write("server.json", config(0));
    plugd_process p = activated(port, "plugd.socket", notify.path(), {"-c", cfg.string()});
    line_client first = first_connection(p, port);
    const auto status = p.wait_exit(10s);
    INFO(p.log());
    CHECK(status == 1);
    CHECK(p.log().find("FileDescriptorName=plugd.socket) matches no listener") !=
          std::string::npos);
    CHECK(p.log().find("(listeners: main, other)") != std::string::npos);
    CHECK(p.log().find("not started") != std::string::npos);
    CHECK(notify.received().empty());
}

TEST_CASE(
    "with WatchdogSec plugd pings WATCHDOG=1 at half the interval and withholds it while "
    "a serving thread is stalled") {
    if (!std::filesystem::exists(socket_activate))
        return skip_test("systemd-socket-activate is not installed (apt-get install systemd)");
    temp_dir tmp;
    notify_socket notify{tmp.path() / "notify"};
    const auto port = unused_fixed_port();
    const auto cfg = tmp.write(
        "server.json",
        R"({ "threads": 1, "plugin_dir": ")" + test_plugin_dir().string() +
            R"(", "plugins": { "p": { "file": "faulty" } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ], "limits": { "stall_warn_ms": 100 } })");
    // WatchdogSec=300ms, as systemd passes it (WATCHDOG_PID may be left out).
    plugd_process p{socket_activate.string(),
                    {"-l", "127.0.0.1:" + std::to_string(port), "--fdname=main", "-E",
                     "NOTIFY_SOCKET=" + notify.path().string(), "-E", "WATCHDOG_USEC=300000",
                     PLUGD_BINARY, "-c", cfg.string()}};
    line_client c = first_connection(p, port);
    INFO(p.log());
    REQUIRE(notify.wait_for("READY=1"));
    REQUIRE(notify.wait_for("WATCHDOG=1", 2s));
    REQUIRE(notify.wait_for("WATCHDOG=1", 2s));
    CHECK(p.wait_for_log("pinging every 150 ms"));
    REQUIRE(c.read_line() == "faulty:first");
    // A handler that blocks its thread for 1.5 s: a stall, and no ping until it ends.
    c.send("block 1500\n");
    REQUIRE(p.wait_for_log("watchdog ping withheld"));
    const auto withheld = std::chrono::steady_clock::now();
    notify.drain();  // pings sent before the stall
    REQUIRE(notify.wait_for("WATCHDOG=1", 5s));
    CHECK(std::chrono::steady_clock::now() - withheld > 800ms);
    CHECK(p.wait_for_log("watchdog pings resume"));
    CHECK(c.read_line(5s) == "faulty:block 1500");
    p.signal(SIGTERM);
    CHECK(p.wait_exit() == 0);
}
