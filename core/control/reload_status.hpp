// reload_status: the file in which a running plugd records which configuration it serves
// and the outcome of its last reload, for `plugd -s` (next to the pid file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace plugd {

/// Outcome of one reload attempt (or canary command), as the server records it for
/// `plugd -s`.
struct reload_status {
    std::uint64_t attempt = 0;  ///< counts every attempt, failed or not
    bool ok = false;
    std::uint64_t generation = 0;  ///< the generation serving after the attempt
    std::string message;           ///< the summary line, or the error
    /// When the attempt began (Unix time, ms). `plugd -s reload` waits for an attempt that
    /// began after its signal: one already running may have read the file before the edit.
    std::int64_t began_unix_ms = 0;
    /// The configuration file the server serves (empty: the built-in default). `plugd -s`
    /// compares it with its own -c, so it never signals a server of another configuration.
    std::filesystem::path config;
    /// The last canary, for `plugd -s reload --canary --wait`: "running" (until its
    /// deadline, Unix ms: max_duration_ms after its start), then "promoted" or
    /// "rolled_back", whose line `message` then is; empty before the first canary.
    std::string canary_state;
    std::uint64_t canary_generation = 0;
    std::int64_t canary_deadline_unix_ms = 0;
};

/// The current Unix time in ms, as began_unix_ms records it.
std::int64_t unix_ms() noexcept;

/// Where the reload outcome is recorded: next to the pid file.
std::filesystem::path reload_status_file(const std::filesystem::path& pid_file);
/// Replaces the file atomically (write, then rename), so a reader never sees half of it.
void write_reload_status(const std::filesystem::path& file, const reload_status& status);
/// The outcome in `file`; nullopt when it is missing, malformed or not a regular file (a
/// symbolic link is not followed, a FIFO not waited on; at most 1 MiB is read).
std::optional<reload_status> read_reload_status(const std::filesystem::path& file);

}  // namespace plugd
