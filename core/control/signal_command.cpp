// `plugd -s`: unlike nginx's fire-and-forget signal, checks whom it signals, then waits for
// the outcome and prints it.
#include "control/signal_command.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "control/control_command.hpp"
#include "control/pid_file.hpp"
#include "control/reload_status.hpp"

namespace plugd {
namespace {

using clock = std::chrono::steady_clock;

int remaining_ms(clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

// Closes a descriptor at scope exit.
struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

std::string describe_config(const std::filesystem::path& config) {
    return config.empty() ? std::string{"the built-in default configuration"} : config.string();
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    if (a.empty() || b.empty()) return a.empty() && b.empty();
    std::error_code ec;
    return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
}

// Whether `pid` is a live process running a binary named plugd (a server from before pid
// files were locked). Only a hint for the message: nothing is signalled either way.
bool is_unlocking_plugd(pid_t pid) {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    return !ec && exe.filename() == "plugd";
}

// Signals the process a pidfd names: unlike kill(), never a later process with its pid.
bool send(int process, int signo) {
    return ::syscall(SYS_pidfd_send_signal, process, signo, nullptr, 0) == 0;
}

// Queues the command signal carrying `command` (as sigqueue does) to the process a pidfd names.
bool send(int process, const control_command& command) {
    siginfo_t info{};
    info.si_signo = command_signal();
    info.si_code = SI_QUEUE;
    info.si_pid = ::getpid();
    info.si_uid = ::getuid();
    info.si_value.sival_int = command.encode();
    return ::syscall(SYS_pidfd_send_signal, process, command_signal(), &info, 0) == 0;
}

// What the server is sent for `request`: a plain reload is SIGHUP, as systemd sends it.
std::optional<control_command> command_of(const signal_request& request) {
    if (request.action == "reload" && request.canary_percent == 0) return std::nullopt;
    control_command c;
    c.what = request.action == "promote"    ? control_command::kind::promote
             : request.action == "rollback" ? control_command::kind::rollback
                                            : control_command::kind::reload;
    c.canary_percent = request.canary_percent;
    return c;
}

// An inotify descriptor that turns readable when a file is written or moved into the
// folder of `file` (how plugd writes its status file); -1, said on stderr, if none.
int watch_folder_of(const std::filesystem::path& file) {
    const int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd >= 0 &&
        ::inotify_add_watch(fd, file.parent_path().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) >= 0) {
        return fd;
    }
    std::cerr << "plugd: cannot watch " << file.parent_path() << ": " << std::strerror(errno)
              << '\n';
    if (fd >= 0) ::close(fd);
    return -1;
}

void discard_events(int watch) {
    char events[4096];
    while (::read(watch, events, sizeof events) > 0) {
    }
}

// The holder of the pid file's lock. Prints why there is none and returns nullopt otherwise.
std::optional<pid_t> find_server(const std::filesystem::path& config_file,
                                 const std::filesystem::path& pid_file) {
    const auto state = inspect_pid_file(pid_file);
    const std::string via = " (the /pid_file of " + describe_config(config_file) + ")";
    switch (state.what) {
        case pid_file_state::kind::missing:
            std::cerr << "plugd: no running plugd found: " << pid_file.string() << " does not exist"
                      << via
                      << ". Is plugd running with this configuration? If /pid_file was "
                         "changed since it started, put the old value back: the running "
                         "server keeps its pid file until it restarts\n";
            return std::nullopt;
        case pid_file_state::kind::stale:
            if (state.written && is_unlocking_plugd(*state.written)) {
                std::cerr << "plugd: " << pid_file.string() << via << " names pid "
                          << *state.written
                          << ", a plugd that holds no lock on it: one older than this "
                             "command, which -s cannot check. Nothing was signalled; stop it "
                             "with kill -TERM "
                          << *state.written << " and start this plugd\n";
                return std::nullopt;
            }
            std::cerr << "plugd: " << pid_file.string() << via << " is stale: "
                      << (state.written
                              ? "it names pid " + std::to_string(*state.written) + ", but "
                              : std::string{})
                      << "no running plugd holds it (one that was killed leaves it behind); "
                         "nothing was signalled. Start plugd; it takes the file over\n";
            return std::nullopt;
        case pid_file_state::kind::held:
            break;
    }
    return state.holder;
}

// Whether the server `process` (pid `pid`, holding `pid_file`) serves `config_file`, as
// its status file says. A server writes that file once it has started (plugins loaded,
// listeners bound), so a command sent while it starts waits for it, until `deadline`.
bool serves_config(std::string_view action, const std::filesystem::path& config_file,
                   const std::filesystem::path& pid_file, pid_t pid, int process,
                   clock::time_point deadline) {
    const auto status_file = reload_status_file(pid_file);
    fd_guard watch{watch_folder_of(status_file)};
    if (watch.fd < 0) return false;
    auto status = read_reload_status(status_file);
    while (!status) {
        pollfd p[2] = {{watch.fd, POLLIN, 0}, {process, POLLIN, 0}};
        if (::poll(p, 2, remaining_ms(deadline)) <= 0) {
            std::cerr << "plugd: pid " << pid << " holds " << pid_file.string()
                      << ", but its status file " << status_file.string()
                      << " did not appear before the timeout: it is still starting, or it "
                         "cannot write there, so which configuration it serves is unknown; "
                         "nothing was signalled (see its log"
                      << (action == "stop" ? "; kill -TERM " + std::to_string(pid) +
                                                 " stops it without this check"
                          : action == "reload" ? "; kill -HUP " + std::to_string(pid) +
                                                     " reloads it without this check"
                                               : std::string{})
                      << ")\n";
            return false;
        }
        if (p[1].revents != 0) {
            std::cerr << "plugd: pid " << pid
                      << " exited while starting (see its log); nothing was signalled\n";
            return false;
        }
        discard_events(watch.fd);
        status = read_reload_status(status_file);
    }
    if (!same_file(status->config, config_file)) {
        std::cerr << "plugd: pid " << pid << " holds " << pid_file.string() << " but serves "
                  << describe_config(status->config) << ", not " << describe_config(config_file)
                  << "; nothing was signalled. Give each configuration its own /pid_file\n";
        return false;
    }
    return true;
}

// Waits until the status file holds a record `done` accepts, or the server exits, or the
// deadline passes (the last two said on stderr, as `what`'s outcome missing). Each time the
// file changes, it is read again.
std::optional<reload_status> wait_for_status(
    pid_t pid, int process, int watch, const std::filesystem::path& status_file,
    clock::time_point deadline, const char* what,
    const std::function<bool(const reload_status&)>& done) {
    for (bool exited = false;;) {
        auto now = read_reload_status(status_file);
        if (now && done(*now)) return now;
        if (exited) {
            std::cerr << "plugd: pid " << pid << " exited during the " << what
                      << " without reporting an outcome (did it crash? see its log); nothing "
                         "serves this configuration now: start plugd again\n";
            return std::nullopt;
        }
        // Either the answer arrives, or the server dies: a crash writes no answer. An exit
        // is reported only after one more look at the status file (it may have answered,
        // then stopped).
        pollfd p[2] = {{watch, POLLIN, 0}, {process, POLLIN, 0}};
        if (::poll(p, 2, remaining_ms(deadline)) <= 0) {
            std::cerr << "plugd: no answer from pid " << pid
                      << " before the timeout; see its log\n";
            return std::nullopt;
        }
        exited = p[1].revents != 0;
        discard_events(watch);
    }
}

// reload (a whole one, or a canary), promote, rollback: signals, waits for the outcome the
// server records and prints it; with `wait`, then waits for the canary's verdict too.
int command(const signal_request& request, pid_t pid, int process,
            const std::filesystem::path& pid_file, clock::time_point deadline) {
    const auto status_file = reload_status_file(pid_file);
    const auto before = read_reload_status(status_file).value_or(reload_status{}).attempt;
    // Watch the folder before signalling, so the server's answer cannot slip past us.
    fd_guard watch{watch_folder_of(status_file)};
    if (watch.fd < 0) return 1;
    const std::int64_t signalled = unix_ms();
    const auto command = command_of(request);
    if (!(command ? send(process, *command) : send(process, SIGHUP))) {
        std::cerr << "plugd: cannot signal pid " << pid << " (from " << pid_file.string()
                  << "): " << std::strerror(errno) << '\n';
        return 1;
    }
    const char* what = request.action == "reload" ? "reload" : request.action.c_str();
    const auto outcome = wait_for_status(
        pid, process, watch.fd, status_file, deadline, what,
        [&](const reload_status& s) { return s.attempt > before && s.began_unix_ms >= signalled; });
    if (!outcome) return 1;
    if (!outcome->ok) {
        if (request.action == "reload") {
            std::cerr << "plugd: reload failed, still serving generation " << outcome->generation
                      << ": " << outcome->message << '\n';
        } else {
            std::cerr << "plugd: " << request.action << " refused: " << outcome->message << '\n';
        }
        return 1;
    }
    std::cout << "plugd: " << outcome->message << std::endl;
    if (!request.wait) return 0;
    // The canary's verdict: the server decides by its max_duration_ms at the latest.
    const std::uint64_t canary = outcome->canary_generation;
    const auto verdict =
        wait_for_status(pid, process, watch.fd, status_file,
                        clock::now() +
                            std::chrono::milliseconds{std::max<std::int64_t>(
                                0, outcome->canary_deadline_unix_ms - unix_ms())} +
                            std::chrono::seconds{30},
                        "canary", [&](const reload_status& s) {
                            return s.canary_generation != canary || s.canary_state != "running";
                        });
    if (!verdict) return 1;
    if (verdict->canary_generation != canary) {
        std::cerr << "plugd: the canary of generation " << canary
                  << " ended without a recorded verdict (see the log)\n";
        return 1;
    }
    std::cout << "plugd: " << verdict->message << std::endl;
    return verdict->canary_state == "promoted" ? 0 : 1;
}

int stop(pid_t pid, int process, clock::time_point deadline) {
    if (!send(process, SIGTERM)) {
        std::cerr << "plugd: cannot signal pid " << pid << ": " << std::strerror(errno) << '\n';
        return 1;
    }
    pollfd p{process, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
        std::cerr << "plugd: pid " << pid << " is still draining after the timeout\n";
        return 1;
    }
    std::cout << "plugd: stopped (pid " << pid << ")\n";
    return 0;
}

}  // namespace

int send_signal_command(const signal_request& request, const std::filesystem::path& config_file,
                        const std::filesystem::path& pid_file, std::chrono::milliseconds timeout) {
    const std::string_view action = request.action;
    const auto pid = find_server(config_file, pid_file);
    if (!pid) return 1;
    // A pidfd names this process and no later one with the same pid, and becomes readable
    // when it exits: no polling of kill(pid, 0).
    fd_guard process{static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0))};
    if (process.fd < 0) {
        std::cerr << "plugd: cannot reach pid " << *pid << " (holding " << pid_file.string()
                  << "): " << std::strerror(errno) << '\n';
        return 1;
    }
    // The holder may have exited between the check and pidfd_open, and its pid been
    // reused: only a pidfd taken while it still holds the file names the right process,
    // and signals go through that pidfd.
    const auto again = inspect_pid_file(pid_file);
    if (again.what != pid_file_state::kind::held || again.holder != *pid) {
        std::cerr << "plugd: pid " << *pid << " exited just now; nothing was signalled\n";
        return 1;
    }
    const auto deadline = clock::now() + timeout;
    if (!serves_config(action, config_file, pid_file, *pid, process.fd, deadline)) return 1;
    return action == "stop" ? stop(*pid, process.fd, deadline)
                            : command(request, *pid, process.fd, pid_file, deadline);
}

}  // namespace plugd
