// worker_environment: what a supervising plugd hands each worker process it starts, in one
// environment variable: which worker it is, the user to run as, the generation to start at,
// where to record its reload outcomes, and the listening sockets it inherits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace plugd {

struct worker_environment {
    unsigned index = 0;
    /// The master's pid: a worker whose parent is no longer it was orphaned while starting.
    long master = 0;
    std::uint64_t first_generation = 1;  ///< a respawned worker continues the master's count
    /// Holds the number the master gives the generation its next reload installs: the
    /// master numbers generations, so a worker's status agrees with the master's.
    std::filesystem::path generation_file;
    std::filesystem::path status_file;  ///< its reload outcomes, for the master
    /// "user": whom the worker switches to before it reads anything (empty: stay as the
    /// master's user).
    std::string user;
    std::map<std::string, int> listeners;  ///< listener name -> inherited listening socket
    /// The memory file its shards count in (see traffic_ledger), which the master reads.
    int ledger = -1;
    /// Whether the master serves /metrics from it: the shards count their traffic (a
    /// canary's figures are counted there whatever this says).
    bool metrics = false;
    /// Where a canary's configuration and number are, when the master runs one (the
    /// worker reads them when told to start it, or at its own start during one).
    std::filesystem::path canary_config;
    std::filesystem::path canary_generation_file;
    /// A canary runs now with this share of new requests: the worker joins it as it starts
    /// (0: none runs).
    unsigned canary_percent = 0;
    /// The memory file holding the master's session ticket secret (tls/ticket_keys), so
    /// that every worker resumes every worker's tickets; -1: none.
    int tickets = -1;
    /// The listeners among `listeners` whose socket systemd passed the master: used
    /// whatever address the configuration says, never closed by a reload (passed_socket).
    std::set<std::string> from_systemd;
};

/// The variable's name: PLUGD_WORKER.
inline constexpr const char* worker_variable = "PLUGD_WORKER";

/// "index=1;generation=3;status=/path;generation_file=/path;user=www-data;ledger=7;
/// metrics=1;canary=/path;canary_generation=/path;canary_percent=20;tickets=8;
/// listen=main@5,web@6;systemd=web" (paths may not hold ';').
std::string encode(const worker_environment& w);

/// Whether the environment entry `entry` ("NAME=value") of the master is kept from the
/// workers it starts: PLUGD_WORKER (each gets its own), and what systemd addresses to the
/// main process alone (NOTIFY_SOCKET, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES,
/// WATCHDOG_USEC, WATCHDOG_PID): only the master talks to systemd, and a worker takes its
/// sockets from the master.
bool kept_from_workers(std::string_view entry);

/// This process's, if a supervisor started it. Throws std::runtime_error on a malformed
/// value (it never comes from a user).
std::optional<worker_environment> this_process_worker();

/// The number in `generation_file` (written by the master before it signals a reload).
/// Throws std::runtime_error naming the file when it cannot be read.
std::uint64_t read_generation_file(const std::filesystem::path& file);
/// Writes `generation` to `file` atomically (write, then rename).
void write_generation_file(const std::filesystem::path& file, std::uint64_t generation);

}  // namespace plugd
