// server: the running plugd: plugins, shards, listeners, signals, reload and shutdown.
#pragma once

#include "config.hpp"
#include "server_options.hpp"

namespace plugd {

/// Loads every plugin instance of `cfg` (constructors run; start() does not) and unloads
/// them again: what `plugd -t` checks. Throws plugin_error naming the first failure.
void check_plugins(const server_config& cfg);

/// Serves `cfg` until SIGINT or SIGTERM, reloading on SIGHUP, then drains and returns the
/// exit status. Throws config_error or plugin_error when it cannot start; nothing is
/// served then.
int serve(server_config cfg, const server_options& options);

}  // namespace plugd
