// `plugd -s reload|stop|promote|rollback`: signals the running plugd and reports the outcome.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace plugd {

/// What `plugd -s` asks.
struct signal_request {
    std::string action;           ///< "reload", "stop", "promote" or "rollback"
    unsigned canary_percent = 0;  ///< reload --canary PERCENT (1 to 99); 0: a whole reload
    bool wait = false;            ///< reload --canary --wait: until the canary's verdict
};

/// Sends `request` to the plugd that holds `pid_file` and serves `config_file` (empty: the
/// built-in default), waits for the outcome (at most `timeout`; with `wait`, until the
/// canary's verdict, which its max_duration_ms bounds) and prints it. Signals nothing, and
/// says why, when no process holds the pid file (a stale file may name an unrelated
/// process) or its holder serves another configuration. Returns the exit status for the
/// command line: 0 when the command took effect (the server stopped; with `wait`, the canary
/// was promoted), 1 otherwise.
int send_signal_command(const signal_request& request, const std::filesystem::path& config_file,
                        const std::filesystem::path& pid_file, std::chrono::milliseconds timeout);

}  // namespace plugd
