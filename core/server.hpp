// server: the running plugd: plugins, shards, listeners, signals, reload and shutdown.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "config.hpp"
#include "supervision/worker_environment.hpp"

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

/// Loads every plugin instance of `cfg` (constructors run; start() does not) and unloads
/// them again: what `plugd -t` checks. Throws plugin_error naming the first failure.
void check_plugins(const server_config& cfg);

/// Serves `cfg` until SIGINT or SIGTERM, reloading on SIGHUP, then drains and returns the
/// exit status. Throws config_error or plugin_error when it cannot start; nothing is
/// served then.
int serve(server_config cfg, const server_options& options);

}  // namespace plugd
