// server_options: what a run of plugd is given besides server.json: the command line, where
// the bundled plugins are, and, in a worker process, what its master handed it.
#pragma once

#include <filesystem>
#include <optional>

#include "worker_environment.hpp"

namespace plugd {

/// Everything `plugd` needs to run besides the configuration itself.
struct server_options {
    std::filesystem::path bundled_plugin_dir;  ///< plugin_dir when server.json names none
    std::filesystem::path config_file;         ///< empty: the built-in default config
    bool watch = false;                        ///< reload when the config or a plugin changes
    /// Set in a worker process a supervising master started: it holds no pid file,
    /// records its reload outcomes where the master reads them, and accepts on the
    /// listening sockets it inherited.
    std::optional<worker_environment> worker;
};

}  // namespace plugd
