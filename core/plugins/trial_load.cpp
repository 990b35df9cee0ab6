// trial_load: the parent spawns the plugd binary itself (/proc/self/exe, even if the file
// has been replaced since) and hands it the spec as JSON in an inherited memory file (not
// on the command line: Linux caps one argument at 128 KiB, and a plugin's config may be
// megabytes); the child's log lines, including a crash report, go to the server's log.
#include "plugins/trial_load.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "faults/crash_report.hpp"
#include "faults/running_code.hpp"
#include "host/host.hpp"
#include "log.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/private_dir.hpp"

extern char** environ;

namespace plugd {
namespace {

// The child's exit status when the plugin refused to load by an exception (the server's
// own load then reports it, with the same words); any other status but 0 is the plugin's.
constexpr int refused_status = 3;

// The descriptor the child finds the spec on.
constexpr int spec_fd = 3;

// The spec in a memory file, positioned at its start, never at `spec_fd` itself (a dup2
// onto itself would keep close-on-exec). Throws plugin_error.
int spec_file(const std::string& text, const std::string& where) {
    const auto fail = [&](const char* what) {
        return plugin_error(where + ": cannot start its trial load: " + what + ": " +
                            std::strerror(errno));
    };
    int fd = ::memfd_create("plugd-trial-spec", MFD_CLOEXEC);
    if (fd < 0) throw fail("memfd_create");
    if (fd == spec_fd) {
        const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, spec_fd + 1);
        ::close(fd);
        if (moved < 0) throw fail("fcntl");
        fd = moved;
    }
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const auto error = fail("writing its spec");
            ::close(fd);
            throw error;
        }
        done += static_cast<std::size_t>(n);
    }
    ::lseek(fd, 0, SEEK_SET);
    return fd;
}

std::string signal_text(int signo) {
    const char* name = ::sigabbrev_np(signo);
    return name ? std::string{"SIG"} + name : "signal " + std::to_string(signo);
}

}  // namespace

void trial_load(const plugin_spec& spec, std::chrono::milliseconds timeout) {
    const nlohmann::json j{{"name", spec.name},
                           {"file", spec.file.string()},
                           {"dir", spec.dir.string()},
                           {"config", spec.config},
                           {"shared_bytes", spec.shared_bytes},
                           // Its log lines join the server's: the same format and level.
                           {"log_json", log::json_enabled()},
                           {"log_level", static_cast<int>(log::threshold())}};
    const std::string where = "plugin \"" + spec.name + "\" (" + spec.file.string() + ")";
    const int spec_in = spec_file(j.dump(), where);
    std::string self = "/proc/self/exe", flag = "--trial-load", fd = std::to_string(spec_fd);
    char* argv[] = {self.data(), flag.data(), fd.data(), nullptr};
    pid_t pid = -1;
    // Only stdin, stdout, stderr and the spec: the child must not hold the server's
    // sockets open.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, spec_in, spec_fd);
    posix_spawn_file_actions_addclosefrom_np(&actions, spec_fd + 1);
    const int rc = ::posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(spec_in);
    if (rc != 0) {
        throw plugin_error(where + ": cannot start its trial load: " + std::strerror(rc));
    }
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    bool exited = true;
    if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        int ready;
        do {
            ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
        } while (ready < 0 && errno == EINTR);
        exited = ready > 0;
        ::close(pidfd);
    }
    if (!exited) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!exited) {
        throw plugin_error(where + ": its constructor and start() did not finish within " +
                           std::to_string(timeout.count()) +
                           " ms in a trial load; not loaded (move slow set-up into a "
                           "background task, ctx.spawn)");
    }
    if (WIFSIGNALED(status)) {
        throw plugin_error(where + ": crashed with " + signal_text(WTERMSIG(status)) +
                           " while loading and starting in a trial process; not loaded, the "
                           "server was not touched (the crash report above names where; fix "
                           "the plugin's constructor or start())");
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && code != refused_status) {
        throw plugin_error(where + ": ended its trial load with exit status " +
                           std::to_string(code) +
                           "; not loaded (a plugin must never call exit(): it would end the "
                           "server)");
    }
}

void run_trial_load(std::string_view fd_text) {
    install_crash_report();
    int status = 0;
    {
        private_dir dir;
        try {
            // The spec: all of the inherited file the parent wrote it to.
            std::string spec_json;
            const int fd = std::atoi(std::string{fd_text}.c_str());
            char chunk[1 << 16];
            for (;;) {
                const ssize_t n = ::read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                spec_json.append(chunk, static_cast<std::size_t>(n));
            }
            ::close(fd);
            const auto j = nlohmann::json::parse(spec_json);
            log::set_json(j.at("log_json").get<bool>());
            log::set_threshold(static_cast<log::level>(j.at("log_level").get<int>()));
            plugin_spec spec;
            spec.name = j.at("name").get<std::string>();
            spec.file = j.at("file").get<std::string>();
            spec.dir = j.at("dir").get<std::string>();
            spec.config = j.at("config");
            spec.shared_bytes = j.at("shared_bytes").get<std::size_t>();
            // A crash report names the plugin being tried, not "the core".
            this_thread_runs() = {spec.name.c_str(), 0, nullptr, nullptr};
            // What start() may ask for exists (an event loop for its background tasks,
            // never run); nothing is destroyed afterwards: the child only has to show
            // that loading and starting end, and _Exit ends it without running plugin code
            // again (no stop(), no destructors).
            auto* io = new boost::asio::io_context{1};
            auto* facilities = new host{host::settings{1, 1}, [] {}};
            facilities->set_serving_loops({io});
            auto* version = new std::shared_ptr<plugin_version>{
                std::make_shared<plugin_version>(spec, dir.path(), 0, *facilities)};
            (*version)->start();
        } catch (const std::exception&) {
            status = refused_status;  // the server's own load reports it
        }
    }  // the private folder goes; the loaded copy was unlinked already
    std::_Exit(status);
}

}  // namespace plugd
