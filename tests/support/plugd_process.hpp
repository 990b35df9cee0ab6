// plugd_process: drive the real plugd binary over loopback in tests (its clients:
// line_client.hpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "line_client.hpp"

namespace plugd::test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

/// A fresh folder under $TMPDIR, removed with its contents by the destructor.
class temp_dir {
  public:
    temp_dir();
    ~temp_dir();
    const std::filesystem::path& path() const { return path_; }
    /// Writes `text` to `name` inside the folder and returns its path.
    std::filesystem::path write(const std::string& name, const std::string& text) const;

  private:
    std::filesystem::path path_;
};

/// The plugd binary under test, started with `args`; its stdout and stderr are collected.
/// The destructor kills it (SIGKILL) if it is still running.
class plugd_process {
  public:
    explicit plugd_process(std::vector<std::string> args);
    /// Another program of the build (plugd-bench), with the same capture and clean-up.
    plugd_process(std::string binary, std::vector<std::string> args);
    ~plugd_process();

    pid_t pid() const { return pid_; }
    /// Waits until `text` has appeared in the log `times` times (counting from the start).
    /// Returns false at the deadline.
    bool wait_for_log(const std::string& text, milliseconds timeout = 10s, std::size_t times = 1);
    /// Number of log lines so far that contain `text`.
    std::size_t count_log(const std::string& text);
    /// Everything logged so far.
    std::string log();
    /// The port listener `name` reports in its "listening on" line (waits for it).
    std::uint16_t port(const std::string& name = "main", milliseconds timeout = 10s);
    /// The admin endpoint's port, from its "listening on" line (waits for it).
    std::uint16_t admin_port(milliseconds timeout = 10s);
    void signal(int signo);
    /// Waits for exit; the exit status, or nullopt at the deadline (or if killed by a signal).
    std::optional<int> wait_exit(milliseconds timeout = 10s);
    /// After wait_exit: the signal that ended the process, or nullopt if it exited.
    std::optional<int> killed_by() const;

  private:
    std::uint16_t port_after(const std::string& marker, const std::string& what,
                             milliseconds timeout);
    void read_stderr(int fd);
    pid_t pid_ = -1;
    int pidfd_ = -1;  ///< readable once the process has exited: no polling loop
    std::optional<int> status_;
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string log_;
    bool closed_ = false;
};

/// Runs plugd with `args` to completion (e.g. `-t`); returns exit status and stderr.
struct run_result {
    int status;
    std::string output;
};
run_result run_plugd(std::vector<std::string> args, milliseconds timeout = 20s);
/// The same for another program of the build.
run_result run_program(std::string binary, std::vector<std::string> args,
                       milliseconds timeout = 20s);

/// Copies `from` to `dir/name` the way a deployment should: write a new file, then rename
/// it over the old one (a plugin file is never rewritten in place while loaded).
void install_plugin(const std::filesystem::path& from, const std::filesystem::path& dir,
                    const std::string& name);

/// A loopback port nothing is bound to, below the kernel's ephemeral range: tests that
/// stop a server and start another on the same port use it, so no client connection of a
/// test running in parallel (those take ephemeral ports) can take it in between.
std::uint16_t unused_fixed_port();

/// A socket listening on an ephemeral loopback port, for tests that play a peer of plugd
/// (a backend it connects to). Closed by the destructor.
struct loopback_listener {
    explicit loopback_listener(int backlog = 16);
    ~loopback_listener();
    loopback_listener(const loopback_listener&) = delete;
    loopback_listener& operator=(const loopback_listener&) = delete;
    int fd = -1;
    std::uint16_t port = 0;
};

/// The processes `parent` started and that still run (a master's: its workers; a
/// worker's: its trial load while it reloads).
std::vector<pid_t> children_of(pid_t parent);

/// Whether every thread of process `pid` is stopped.
bool stopped(pid_t pid);

/// Worker processes stopped with SIGSTOP, continued when it goes (also when a check fails:
/// a stopped worker would not even end with its master). Tests use it to make the other
/// workers take the next connections from a shared accept queue.
struct paused_workers {
    paused_workers() = default;
    paused_workers(const paused_workers&) = delete;
    paused_workers& operator=(const paused_workers&) = delete;
    ~paused_workers();
    /// Stops `w` and waits (at most 10 s) until every thread of it is stopped: SIGSTOP is
    /// delivered asynchronously, and until then the worker may still accept. False if it
    /// could not be stopped.
    bool pause(pid_t w);
    std::vector<pid_t> pids;
};

/// Resident set size of `pid` in KiB, from /proc/<pid>/status.
std::size_t rss_kib(pid_t pid);

/// Distinct plugin copies mapped into `pid` (private copies are named <dir>/plugd.*/*.so).
std::size_t mapped_plugin_copies(pid_t pid);

/// A config for one listener on an ephemeral port routed to `plugin_file` in `plugin_dir`.
std::string one_listener_config(const std::filesystem::path& plugin_dir,
                                const std::string& plugin_file,
                                const std::string& plugin_config = "{}",
                                const std::string& framing = "line",
                                const std::string& limits = "{}");

/// Folder of the bundled plugins (greeting) and of the test plugins, from the build.
std::filesystem::path bundled_plugin_dir();
std::filesystem::path test_plugin_dir();

/// A running plugd with one listener routed to `file` (test plugins unless `dir` says).
struct one_listener_server {
    one_listener_server(const std::string& file, const std::string& config = "{}",
                        const std::string& framing = "line", const std::string& limits = "{}",
                        const std::filesystem::path& dir = test_plugin_dir())
        : cfg{tmp.write("server.json", one_listener_config(dir, file, config, framing, limits))},
          process{{"-c", cfg.string()}},
          port{process.port()} {}
    temp_dir tmp;
    std::filesystem::path cfg;
    plugd_process process;
    std::uint16_t port;
};

}  // namespace plugd::test
