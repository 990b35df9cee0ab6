// listener: binding with SO_REUSEPORT, and bind errors that say what to do.
#include "serving/listener.hpp"

#include <boost/asio/socket_base.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace plugd {
namespace {

std::string listener_path(const server_config& cfg, const listener_spec& l) {
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        if (cfg.listeners[i].name == l.name) return "/listeners/" + std::to_string(i);
    }
    return "/listeners";
}

bool is_wildcard(const std::string& address) {
    return asio::ip::make_address(address).is_unspecified();
}

// Whether the inherited socket `fd` listens where `wanted` says (port 0: anywhere): a
// listener moved by a reload binds anew rather than keep the master's old socket.
bool inherited_matches(int fd, const tcp::endpoint& wanted) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    // Only an IP socket can match; anything else (a Unix socket handed over by systemd) has
    // an address larger than an endpoint holds.
    tcp::endpoint at;
    if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || len > at.capacity()) return false;
    std::memcpy(at.data(), &ss, len);
    at.resize(len);
    return at.address() == wanted.address() && (wanted.port() == 0 || at.port() == wanted.port());
}

// Each shard accepts on its own duplicate of the inherited socket: the same accept queue.
std::vector<std::shared_ptr<shard_listener>> adopt(passed_socket passed, const listener_spec& spec,
                                                   std::vector<std::unique_ptr<shard>>& shards) {
    std::vector<std::shared_ptr<shard_listener>> slots;
    for (auto& s : shards) {
        auto r = std::make_shared<shard_listener>(s->io(), spec);
        const int own = ::fcntl(passed.fd, F_DUPFD_CLOEXEC, 0);
        boost::system::error_code ec;
        if (own >= 0) {
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            ::getsockname(own, reinterpret_cast<sockaddr*>(&ss), &len);
            r->acceptor.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), own, ec);
        }
        if (own >= 0 && ec) ::close(own);
        if (own < 0 || ec) {
            throw config_error("listener \"" + spec.name + "\": cannot use the listening socket " +
                               (passed.from_systemd ? "systemd passed (descriptor " +
                                                          std::to_string(passed.fd) + ")"
                                                    : std::string{"inherited from the master"}) +
                               ": " + (own < 0 ? std::string{std::strerror(errno)} : ec.message()) +
                               "; restart plugd (with systemd: restart the .socket unit too)");
        }
        slots.push_back(std::move(r));
    }
    return slots;
}

// The listener of this plugd that holds the port `spec` wants, if any.
const listener_spec* held_by(const std::vector<listener_spec>& held, const listener_spec& spec) {
    for (const auto& l : held) {
        if (l.port == spec.port &&
            (l.address == spec.address || is_wildcard(l.address) || is_wildcard(spec.address))) {
            return &l;
        }
    }
    return nullptr;
}

std::string bind_advice(const boost::system::error_code& ec, const std::vector<listener_spec>& held,
                        const listener_spec& spec) {
    if (ec == asio::error::address_in_use) {
        if (const auto* own = held_by(held, spec)) {
            return "; this plugd's own listener \"" + own->name +
                   "\" holds it until this reload has succeeded. To move a port to another "
                   "listener name, reload twice: first remove it from \"" +
                   own->name + "\" (or rename \"" + own->name + "\" itself), then add it";
        }
        return "; another process already listens there (see `ss -ltnp 'sport = :" +
               std::to_string(spec.port) +
               "'`): choose another port, or, to share it with another plugd on purpose, set "
               "\"reuse_port\": true on this listener in both";
    }
    if (ec == asio::error::access_denied) {
        return "; ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a higher port";
    }
    if (ec == boost::system::errc::address_not_available) {
        return "; this machine has no such address: use one of its own, or 0.0.0.0";
    }
    return "";
}

}  // namespace

std::vector<std::shared_ptr<shard_listener>> bind_listener(
    const server_config& cfg, const listener_spec& spec, const std::vector<listener_spec>& held,
    std::vector<std::unique_ptr<shard>>& shards, passed_socket passed) {
    const tcp::endpoint wanted{asio::ip::make_address(spec.address), spec.port};
    if (passed.fd >= 0 && (passed.from_systemd || inherited_matches(passed.fd, wanted)))
        return adopt(passed, spec, shards);
    const std::string where = "listener \"" + spec.name + "\" (" + cfg.source.string() + ": " +
                              listener_path(cfg, spec) + ")";
    auto fail = [&](const char* step, const boost::system::error_code& ec) {
        throw config_error(where + ": cannot " + step + " " + spec.address + ":" +
                           std::to_string(spec.port) + ": " + ec.message() +
                           bind_advice(ec, held, spec));
    };
    boost::system::error_code ec;
    if (spec.port != 0 && !spec.reuse_port) {
        // SO_REUSEPORT would let us share the port with another running plugd without an
        // error; a probe bind without it makes "address in use" fail loudly instead
        // (unless the listener asks to share it: reuse_port).
        // SO_REUSEADDR it does need, as every socket plugd binds: without it, connections
        // of a previous plugd lingering in TIME_WAIT (after a stop, a crash or a removed
        // listener) block the port for a minute, while a socket that really listens there
        // still refuses the bind.
        asio::io_context probe_io;
        tcp::acceptor probe{probe_io};
        probe.open(wanted.protocol(), ec);
        if (!ec) probe.set_option(asio::socket_base::reuse_address{true}, ec);
        if (!ec) probe.bind(wanted, ec);
        if (ec) fail("bind", ec);
    }
    std::vector<std::shared_ptr<shard_listener>> slots;
    std::uint16_t port = spec.port;
    for (auto& s : shards) {
        auto r = std::make_shared<shard_listener>(s->io(), spec);
        auto& a = r->acceptor;
        const tcp::endpoint at{wanted.address(), port};
        a.open(at.protocol(), ec);
        if (ec) fail("open a socket for", ec);
        a.set_option(asio::socket_base::reuse_address{true}, ec);
        const int on = 1;
        ::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
        a.bind(at, ec);
        if (ec) fail("bind", ec);
        a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) fail("listen on", ec);
        port = a.local_endpoint().port();  // an ephemeral port: every shard joins the same one
        slots.push_back(std::move(r));
    }
    return slots;
}

}  // namespace plugd
