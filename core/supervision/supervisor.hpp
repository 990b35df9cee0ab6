// supervisor: with "workers": N >= 2 (or "supervise": true), the plugd a user starts is a
// master process. It owns the pid file, the configuration and the listening sockets, and
// runs N worker processes, each a whole plugd (threads, plugins, reloads) accepting on
// sockets it inherits. A worker that dies is started again, while the listening sockets
// stay open in the master: no new connection is refused meanwhile; only the dead worker's
// own connections are lost.
#pragma once

#include "config.hpp"
#include "server_options.hpp"

namespace plugd {

/// Runs the master until SIGINT or SIGTERM (forwarded to every worker, which drain as a
/// single plugd does), reloading every worker on SIGHUP with one combined outcome. Returns
/// the exit status. Throws config_error when it cannot bind a listener.
int supervise(server_config cfg, const server_options& options);

}  // namespace plugd
