// reload_plan: what a reload must change, from the running config to a new one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config.hpp"

namespace plugd {

/// The difference between the running configuration and a new one. Computing it changes
/// nothing; the server then prepares every part and swaps all of it, or none.
struct reload_plan {
    std::vector<plugin_spec> load;    ///< new instances, or new code or config
    std::vector<std::string> keep;    ///< instances whose file bytes and config are the same
    std::vector<std::string> unload;  ///< instances no longer named
    std::vector<listener_spec> add;   ///< new names, or a new address or port
    std::vector<listener_spec> keep_listeners;  ///< same name and address:port: keep the sockets
    std::vector<std::string> remove;            ///< names no longer present, or whose address moved

    bool changes_nothing() const noexcept {
        return load.empty() && unload.empty() && add.empty() && remove.empty();
    }
};

/// Compares `running` (whose instances' loaded bytes hash to `loaded_hash(name)`) with
/// `next`. Reads each plugin file of `next` to notice new code at the same path; throws
/// plugin_error when one cannot be read.
reload_plan plan_reload(const server_config& running, const server_config& next,
                        const std::function<std::uint64_t(const std::string&)>& loaded_hash);

/// Throws config_error, naming the JSON path of `next` and what to do, unless `plan` (from
/// `running` to `next`) is one a canary can judge: it reloads at least one plugin instance
/// (its file, bytes, config or settings), adds and removes none, and changes nothing else
/// that serves (listeners, routes, limits, log; `canary` itself may change, it judges the
/// canary). Both sides of a canary share everything but the versions of the instances it
/// changed, so that they are compared on the same traffic.
void check_canary_plan(const server_config& running, const server_config& next,
                       const reload_plan& plan);

/// "a, b, c" (or "none"): how the reload log line lists names.
std::string join_names(const std::vector<std::string>& names);

}  // namespace plugd
