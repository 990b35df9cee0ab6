// trial_load: a new plugin version's constructor and start() run first in a short-lived
// child process, so a plugin that crashes there refuses the reload instead of ending the
// server.
#pragma once

#include <chrono>
#include <string_view>

#include "config.hpp"

namespace plugd {

/// Runs `plugd --trial-load` on `spec` (handed over in an inherited memory file, so a
/// config of any size fits): the child loads the plugin as the server would
/// (checks, private copy, constructor, start()) with the same config, and exits.
/// Returns when the child exited by itself (having loaded it, or having refused it with
/// an error the server's own load will report). Throws plugin_error naming the plugin
/// when the child died of a signal, called exit() itself, or did not finish in `timeout`.
void trial_load(const plugin_spec& spec, std::chrono::milliseconds timeout);

/// The child's side, `plugd --trial-load FD`: reads the spec (JSON) from descriptor FD,
/// which the parent left to it; never returns (it _Exits: 0 loaded and started, 3 refused
/// by an exception, which the server's own load then reports).
[[noreturn]] void run_trial_load(std::string_view fd_text);

}  // namespace plugd
