// `plugd -s reload|stop`: signals the running plugd and reports the outcome.
#pragma once

#include <chrono>
#include <filesystem>
#include <string_view>

namespace plugd {

/// Sends `action` ("reload" or "stop") to the plugd that holds `pid_file` and serves
/// `config_file` (empty: the built-in default), waits for the outcome (at most `timeout`)
/// and prints it. Signals nothing, and says why, when no process holds the pid file (a
/// stale file may name an unrelated process) or its holder serves another configuration.
/// Returns the exit status for the command line: 0 when the reload took effect or the
/// server stopped, 1 otherwise.
int send_signal_command(std::string_view action, const std::filesystem::path& config_file,
                        const std::filesystem::path& pid_file, std::chrono::milliseconds timeout);

}  // namespace plugd
