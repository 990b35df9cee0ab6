// listener: binding with SO_REUSEPORT, and bind errors that say what to do.
#include "listener.hpp"

#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

namespace plugd {
namespace {

std::string listener_path(const server_config& cfg, const listener_spec& l) {
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        if (cfg.listeners[i].name == l.name) return "/listeners/" + std::to_string(i);
    }
    return "/listeners";
}

std::string bind_advice(const boost::system::error_code& ec, std::uint16_t port) {
    if (ec == asio::error::address_in_use) {
        return "; another process already listens there (see `ss -ltnp 'sport = :" +
               std::to_string(port) + "'`), or choose another port";
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

std::vector<std::shared_ptr<route>> bind_listener(const server_config& cfg,
                                                  const listener_spec& spec,
                                                  std::vector<std::unique_ptr<shard>>& shards) {
    const tcp::endpoint wanted{asio::ip::make_address(spec.address), spec.port};
    const std::string where = "listener \"" + spec.name + "\" (" + cfg.source.string() + ": " +
                              listener_path(cfg, spec) + ")";
    auto fail = [&](const char* step, const boost::system::error_code& ec) {
        throw config_error(where + ": cannot " + step + " " + spec.address + ":" +
                           std::to_string(spec.port) + ": " + ec.message() +
                           bind_advice(ec, spec.port));
    };
    boost::system::error_code ec;
    if (spec.port != 0) {
        // SO_REUSEPORT would let us share the port with another running plugd without an
        // error; a probe bind without it makes "address in use" fail loudly instead.
        asio::io_context probe_io;
        tcp::acceptor probe{probe_io};
        probe.open(wanted.protocol(), ec);
        if (!ec) probe.bind(wanted, ec);
        if (ec) fail("bind", ec);
    }
    std::vector<std::shared_ptr<route>> routes;
    std::uint16_t port = spec.port;
    for (auto& s : shards) {
        auto r = std::make_shared<route>(s->io(), spec);
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
        routes.push_back(std::move(r));
    }
    return routes;
}

std::string format_endpoint(const tcp::endpoint& endpoint) {
    // Appended piece by piece: GCC 12 warns falsely (-Wstringop-overflow) about
    // "[" + std::string here.
    const auto address = endpoint.address();
    std::string text;
    if (address.is_v6()) text += '[';
    text += address.to_string();
    if (address.is_v6()) text += ']';
    text += ':';
    text += std::to_string(endpoint.port());
    return text;
}

}  // namespace plugd
