// plugd_process: process spawning and stderr capture; the loopback helpers around it.
#include "plugd_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace plugd::test {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

temp_dir::temp_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string{tmp && *tmp ? tmp : "/tmp"} + "/plugd-test.XXXXXX";
    if (!::mkdtemp(pattern.data())) fail("mkdtemp");
    path_ = pattern;
}

temp_dir::~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path temp_dir::write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream{p, std::ios::binary | std::ios::trunc} << text;
    return p;
}

plugd_process::plugd_process(std::vector<std::string> args)
    : plugd_process{PLUGD_BINARY, std::move(args)} {}

plugd_process::plugd_process(std::string binary, std::vector<std::string> args) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    args.insert(args.begin(), binary);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (rc != 0) {
        ::close(pipe_fds[0]);
        errno = rc;
        fail("posix_spawn " + binary);
    }
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) fail("pidfd_open");
    reader_ = std::thread{[this, fd = pipe_fds[0]] { read_stderr(fd); }};
}

plugd_process::~plugd_process() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    if (reader_.joinable()) reader_.join();
    if (pidfd_ >= 0) ::close(pidfd_);
}

void plugd_process::read_stderr(int fd) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard lock{mutex_};
        if (n <= 0) {
            closed_ = true;
            changed_.notify_all();
            break;
        }
        log_.append(buf, static_cast<std::size_t>(n));
        changed_.notify_all();
    }
    ::close(fd);
}

namespace {
std::size_t count_in(const std::string& log, const std::string& text) {
    std::size_t n = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
}
}  // namespace

bool plugd_process::wait_for_log(const std::string& text, milliseconds timeout, std::size_t times) {
    std::unique_lock lock{mutex_};
    changed_.wait_for(lock, timeout, [&] { return count_in(log_, text) >= times || closed_; });
    return count_in(log_, text) >= times;
}

std::size_t plugd_process::count_log(const std::string& text) {
    std::lock_guard lock{mutex_};
    return count_in(log_, text);
}

std::string plugd_process::log() {
    std::lock_guard lock{mutex_};
    return log_;
}

std::uint16_t plugd_process::port(const std::string& name, milliseconds timeout) {
    return port_after("listener " + name + ": listening on ", "listener " + name, timeout);
}

std::uint16_t plugd_process::admin_port(milliseconds timeout) {
    return port_after("admin endpoint: listening on ", "its admin endpoint", timeout);
}

std::uint16_t plugd_process::port_after(const std::string& marker, const std::string& what,
                                        milliseconds timeout) {
    if (!wait_for_log(marker, timeout)) {
        throw std::runtime_error("plugd never reported " + what + "; its log:\n" + log());
    }
    const std::string text = log();
    const auto at = text.find(marker);
    const auto end = text.find(' ', at + marker.size());
    const std::string address = text.substr(at + marker.size(), end - at - marker.size());
    return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

void plugd_process::signal(int signo) {
    ::kill(pid_, signo);
}

std::optional<int> plugd_process::wait_exit(milliseconds timeout) {
    if (!status_) {
        pollfd p{pidfd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
        int status = 0;
        if (::waitpid(pid_, &status, 0) != pid_) fail("waitpid");
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (reader_.joinable()) reader_.join();
    if (*status_ >= 128) return std::nullopt;
    return status_;
}

std::optional<int> plugd_process::killed_by() const {
    if (!status_ || *status_ < 128) return std::nullopt;
    return *status_ - 128;
}

run_result run_plugd(std::vector<std::string> args, milliseconds timeout) {
    return run_program(PLUGD_BINARY, std::move(args), timeout);
}

run_result run_program(std::string binary, std::vector<std::string> args, milliseconds timeout) {
    plugd_process p{std::move(binary), std::move(args)};
    const auto status = p.wait_exit(timeout);
    return {status.value_or(-1), p.log()};
}

void install_plugin(const std::filesystem::path& from, const std::filesystem::path& dir,
                    const std::string& name) {
    const auto staged = dir / (name + ".staged");
    std::filesystem::copy_file(from, staged, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(staged, dir / name);
}

std::uint16_t unused_fixed_port() {
    // Debian's ip_local_port_range starts at 32768; below it, ports are only ever bound on
    // purpose. A pseudo-random start spreads parallel tests apart.
    static std::uint32_t next = static_cast<std::uint32_t>(::getpid()) * 7919u;
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto port = static_cast<std::uint16_t>(20000 + (next++ * 7919u) % 12000);
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(fd);
        if (free) return port;
    }
    throw std::runtime_error("no unused loopback port between 20000 and 32000");
}

loopback_listener::loopback_listener(int backlog) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string{"socket: "} + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        throw std::runtime_error("cannot listen on a loopback port: " + why);
    }
    port = ntohs(addr.sin_port);
}

loopback_listener::~loopback_listener() {
    ::close(fd);
}

std::vector<pid_t> children_of(pid_t parent) {
    const auto p = std::to_string(parent);
    std::ifstream in{"/proc/" + p + "/task/" + p + "/children"};
    std::vector<pid_t> children;
    for (pid_t c; in >> c;) children.push_back(c);
    return children;
}

bool stopped(pid_t pid) {
    for (const auto& task :
         std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/task"}) {
        std::ifstream in{task.path() / "stat"};
        const std::string stat((std::istreambuf_iterator<char>(in)), {});
        const auto after_name = stat.rfind(')');
        if (after_name == std::string::npos || after_name + 2 >= stat.size() ||
            stat[after_name + 2] != 'T')
            return false;
    }
    return true;
}

paused_workers::~paused_workers() {
    for (const pid_t w : pids) ::kill(w, SIGCONT);
}

bool paused_workers::pause(pid_t w) {
    if (::kill(w, SIGSTOP) != 0) return false;
    pids.push_back(w);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!stopped(w)) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::size_t rss_kib(pid_t pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    }
    return 0;
}

std::size_t mapped_plugin_copies(pid_t pid) {
    std::ifstream maps{"/proc/" + std::to_string(pid) + "/maps"};
    std::set<std::string> copies;
    for (std::string line; std::getline(maps, line);) {
        const auto path = line.find('/');
        if (path == std::string::npos) continue;
        const std::string file = line.substr(path);
        if (file.find("/plugd.") != std::string::npos && file.find(".so") != std::string::npos) {
            copies.insert(file);
        }
    }
    return copies.size();
}

std::string one_listener_config(const std::filesystem::path& plugin_dir,
                                const std::string& plugin_file, const std::string& plugin_config,
                                const std::string& framing, const std::string& limits) {
    return R"({ "threads": 2, "plugin_dir": ")" + plugin_dir.string() +
           R"(", "plugins": { "p": { "file": ")" + plugin_file + R"(", "config": )" +
           plugin_config +
           R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": ")" +
           framing + R"(", "plugin": "p" } ], "limits": )" + limits + " }";
}

std::filesystem::path bundled_plugin_dir() {
    return PLUGD_BUNDLED_PLUGIN_DIR;
}
std::filesystem::path test_plugin_dir() {
    return PLUGD_TEST_PLUGIN_DIR;
}

}  // namespace plugd::test
