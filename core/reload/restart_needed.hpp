// restart_needed: the settings a reload cannot apply, because the process is set up with
// them at start.
#pragma once

#include "config.hpp"

namespace plugd {

/// Throws config_error when `next` changes, from `running`, a setting only a restart
/// applies: user, threads, workers, supervise, offload_threads, offload_queue, pid_file,
/// admin (and the admin token). The message names the first such setting by its JSON
/// path, with both values (never the token's) and what to do. Both a single plugd and a
/// supervising master check a reload with it before anything else.
void check_no_restart_needed(const server_config& running, const server_config& next);

}  // namespace plugd
