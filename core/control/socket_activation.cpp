// socket_activation: sd_listen_fds_with_names(3) and sd_is_socket_inet(3) from libsystemd.
#include "control/socket_activation.hpp"

#include <systemd/sd-daemon.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "log.hpp"

namespace plugd {
namespace {

std::string listener_names(const server_config& cfg) {
    std::string names;
    for (const auto& l : cfg.listeners) names += (names.empty() ? "" : ", ") + l.name;
    return names.empty() ? "none" : names;
}

std::string config_name(const server_config& cfg) {
    return cfg.source.empty() ? "the built-in default configuration" : cfg.source.string();
}

}  // namespace

std::map<std::string, int> take_activated_sockets(const server_config& cfg) {
    char** names = nullptr;
    // 1: LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are unset: a process plugd starts (a
    // worker, a plugin's child) must not take these sockets for its own.
    const int n = ::sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        throw config_error(std::string{"systemd socket activation: LISTEN_FDS or LISTEN_FDNAMES "
                                       "is malformed ("} +
                           std::strerror(-n) +
                           "); check the .socket unit, or unset them when not started by "
                           "systemd");
    }
    std::map<std::string, int> sockets;
    std::string error;
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        const std::string name = names && names[i] ? names[i] : "unknown";
        const std::string which = "the socket systemd passed as descriptor " + std::to_string(fd) +
                                  " (FileDescriptorName=" + name + ")";
        if (!error.empty()) continue;  // the first problem is reported; names are freed below
        if (::sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
            error = which +
                    " is not a listening TCP socket: a listener accepts only on a ListenStream= "
                    "of an IP address and port; fix the .socket unit";
        } else if (std::find_if(cfg.listeners.begin(), cfg.listeners.end(), [&](const auto& l) {
                       return l.name == name;
                   }) == cfg.listeners.end()) {
            error = which + " matches no listener of " + config_name(cfg) +
                    " (listeners: " + listener_names(cfg) +
                    "): set FileDescriptorName= in the .socket unit to the name of the listener "
                    "that is to accept on it (without it, systemd names the socket after its "
                    "unit), or add a listener of that name";
        } else if (sockets.count(name)) {
            error = which + " has the name of descriptor " + std::to_string(sockets[name]) +
                    " too: a listener accepts on one socket; give each ListenStream= its own "
                    ".socket unit with its own FileDescriptorName=, or remove one";
        } else {
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            sockets[name] = fd;
        }
    }
    if (names) {
        for (int i = 0; i < n; ++i) std::free(names[i]);
        std::free(names);
    }
    if (!error.empty()) throw config_error("systemd socket activation: " + error);
    for (const auto& [name, fd] : sockets)
        log::info("listener " + name + ": takes the socket systemd passed (descriptor " +
                  std::to_string(fd) + ") instead of binding");
    return sockets;
}

}  // namespace plugd
