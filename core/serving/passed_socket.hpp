// passed_socket: a listening socket a listener accepts on instead of binding one.
#pragma once

namespace plugd {

/// A listening socket this plugd did not bind itself, which a listener accepts on instead.
struct passed_socket {
    int fd = -1;
    /// Passed by systemd (socket activation: to this process, or to its supervising master):
    /// the .socket unit decides its address, so it is used whatever address and port the
    /// listener's configuration says, and it stays open when a reload removes the listener
    /// (systemd holds it anyway; a later reload that adds the listener back uses it again).
    /// Otherwise a supervising master's socket: used only while the listener's address and
    /// port are the ones it was bound to.
    bool from_systemd = false;
};

}  // namespace plugd
