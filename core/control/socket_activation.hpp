// socket_activation: the listening sockets systemd passes plugd (a .socket unit, or
// systemd-socket-activate), matched to listeners by name. The only file of the core that
// reads LISTEN_FDS through libsystemd.
#pragma once

#include <map>
#include <string>

#include "config.hpp"

namespace plugd {

/// Takes the sockets systemd passed this process (sd_listen_fds_with_names: LISTEN_FDS,
/// LISTEN_PID, LISTEN_FDNAMES), which it then unsets, and returns them by listener name:
/// each one's FileDescriptorName= is the `name` of the listener that accepts on it instead
/// of binding. Empty when none were passed. Each is close-on-exec (no plugin's child
/// process inherits it). Call it once, before any thread starts (it changes the
/// environment), and only in a process that is to serve (never for `plugd -t`).
/// Throws config_error, naming the descriptor, its name and the configuration's listener
/// names, for a socket that is not a listening TCP socket, one whose name no listener of
/// `cfg` has, or two of the same name.
std::map<std::string, int> take_activated_sockets(const server_config& cfg);

}  // namespace plugd
