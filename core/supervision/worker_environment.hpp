// worker_environment: what a supervising plugd hands each worker process it starts, in one
// environment variable: which worker it is, the generation to start at, where to record
// its reload outcomes, and the listening sockets it inherits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace plugd {

struct worker_environment {
    unsigned index = 0;
    std::uint64_t first_generation = 1;    ///< a respawned worker continues the master's count
    std::filesystem::path status_file;     ///< its reload outcomes, for the master
    std::map<std::string, int> listeners;  ///< listener name -> inherited listening socket
};

/// The variable's name: PLUGD_WORKER.
inline constexpr const char* worker_variable = "PLUGD_WORKER";

/// "index=1;generation=3;status=/path;listen=main@5,web@6" (paths may not hold ';').
std::string encode(const worker_environment& w);

/// This process's, if a supervisor started it. Throws std::runtime_error on a malformed
/// value (it never comes from a user).
std::optional<worker_environment> this_process_worker();

}  // namespace plugd
