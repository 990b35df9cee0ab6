// `plugd -s`: unlike nginx's fire-and-forget signal, waits for the outcome and prints it.
#include "signal_command.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "control_files.hpp"

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

int reload(pid_t pid, const std::filesystem::path& pid_file, clock::time_point deadline) {
    const auto status_file = reload_status_file(pid_file);
    const auto before = read_reload_status(status_file).value_or(reload_status{}).attempt;
    // Watch the folder before signalling, so the server's answer cannot slip past us.
    fd_guard watch{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)};
    if (watch.fd < 0 || ::inotify_add_watch(watch.fd, status_file.parent_path().c_str(),
                                            IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        std::cerr << "plugd: cannot watch " << status_file.parent_path() << ": "
                  << std::strerror(errno) << '\n';
        return 1;
    }
    const std::int64_t signalled = unix_ms();
    if (::kill(pid, SIGHUP) != 0) {
        std::cerr << "plugd: cannot signal pid " << pid << " (from " << pid_file.string()
                  << "): " << std::strerror(errno) << '\n';
        return 1;
    }
    for (;;) {
        auto now = read_reload_status(status_file);
        if (now && now->attempt > before && now->began_unix_ms >= signalled) {
            if (now->ok) {
                std::cout << "plugd: " << now->message << '\n';
                return 0;
            }
            std::cerr << "plugd: reload failed, still serving generation " << now->generation
                      << ": " << now->message << '\n';
            return 1;
        }
        pollfd p{watch.fd, POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
            std::cerr << "plugd: no answer from pid " << pid
                      << " before the timeout; see its log\n";
            return 1;
        }
        char events[4096];
        while (::read(watch.fd, events, sizeof events) > 0) {
        }
    }
}

int stop(pid_t pid, clock::time_point deadline) {
    fd_guard process{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    if (process.fd < 0 || ::kill(pid, SIGTERM) != 0) {
        std::cerr << "plugd: cannot signal pid " << pid << ": " << std::strerror(errno) << '\n';
        return 1;
    }
    pollfd p{process.fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
        std::cerr << "plugd: pid " << pid << " is still draining after the timeout\n";
        return 1;
    }
    std::cout << "plugd: stopped (pid " << pid << ")\n";
    return 0;
}

}  // namespace

int send_signal_command(std::string_view action, const std::filesystem::path& pid_file,
                        std::chrono::milliseconds timeout) {
    const auto pid = read_pid_file(pid_file);
    if (!pid || ::kill(*pid, 0) != 0) {
        std::cerr << "plugd: no running plugd found through " << pid_file.string()
                  << " (is it running with this configuration's pid_file?)\n";
        return 1;
    }
    const auto deadline = clock::now() + timeout;
    return action == "reload" ? reload(*pid, pid_file, deadline) : stop(*pid, deadline);
}

}  // namespace plugd
