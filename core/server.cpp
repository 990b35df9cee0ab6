// server: start-up, binding, signals and graceful shutdown of the running plugd.
#include "server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/socket.h>

#include <map>
#include <thread>

#include "log.hpp"
#include "plugin_version.hpp"
#include "private_dir.hpp"
#include "shard.hpp"

namespace plugd {
namespace {

using plugin_map = std::map<std::string, std::shared_ptr<plugin_version>>;

plugin_map load_plugins(const server_config& cfg, const private_dir& dir,
                        std::uint64_t generation) {
    plugin_map loaded;
    for (const auto& spec : cfg.plugins) {
        loaded[spec.name] = std::make_shared<plugin_version>(spec, dir.path(), generation);
    }
    return loaded;
}

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

// Binds one SO_REUSEPORT acceptor per shard, so the kernel spreads new connections
// across the shards and each shard accepts on its own thread.
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
    const auto bound = routes.front()->acceptor.local_endpoint();
    log::info("listener " + spec.name + ": listening on " +
              (bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                       : bound.address().to_string()) +
              ":" + std::to_string(bound.port()) + " (framing " +
              std::string{to_string(spec.framing)} + ", plugin " + spec.plugin + ")");
    return routes;
}

class server {
public:
    server(server_config cfg, const server_options& options)
        : cfg_{std::move(cfg)}, options_{options} {}

    int run() {
        const unsigned threads =
            cfg_.threads != 0 ? cfg_.threads : std::max(1u, std::thread::hardware_concurrency());
        plugins_ = load_plugins(cfg_, dir_, generation_);
        for (const auto& [name, p] : plugins_) {
            log::info("plugin " + name + ": loaded " + p->spec().file.string());
        }
        // Connections are counted per shard (no shared counter on the accept path), so the
        // limit is shared out: each shard takes its part, rounded up.
        const std::size_t per_shard = (cfg_.limits.max_connections + threads - 1) / threads;
        for (unsigned i = 0; i < threads; ++i) {
            shards_.push_back(std::make_unique<shard>(i, cfg_.limits, per_shard));
        }
        std::vector<std::pair<const listener_spec*, std::vector<std::shared_ptr<route>>>> bound;
        for (const auto& l : cfg_.listeners) bound.emplace_back(&l, bind_listener(cfg_, l, shards_));

        std::vector<plugin_version*> started;
        try {
            for (auto& [name, p] : plugins_) {
                p->start();
                started.push_back(p.get());
            }
        } catch (...) {
            for (auto* p : started) p->stop();
            throw;
        }
        for (auto& [spec, routes] : bound) {
            for (std::size_t i = 0; i < shards_.size(); ++i) {
                asio::post(shards_[i]->io(), [s = shards_[i].get(), r = routes[i],
                                              v = plugins_.at(spec->plugin)] {
                    s->add_route(r, v);
                });
            }
        }
        for (auto& s : shards_) {
            s->start([this] { asio::post(control_, [this] { shard_finished(); }); });
        }
        signals_.async_wait([this](auto ec, int signo) { on_signal(ec, signo); });
        log::info("plugd " PLUGD_VERSION " serving with " + std::to_string(threads) +
                  " threads (pid " + std::to_string(::getpid()) + ")");

        control_.run();
        for (auto& s : shards_) s->join();
        shards_.clear();  // io_contexts and their coroutine frames go before the plugins
        for (auto& [name, p] : plugins_) p->stop();
        plugins_.clear();
        log::info("plugd stopped");
        return 0;
    }

private:
    void on_signal(const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (signo == SIGINT || signo == SIGTERM) {
            begin_shutdown(signo);
            return;
        }
        signals_.async_wait([this](auto e, int s) { on_signal(e, s); });
    }

    void begin_shutdown(int signo) {
        log::info(std::string{"received "} + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                  ": no longer accepting; letting requests in flight finish (at most " +
                  std::to_string(cfg_.limits.shutdown_timeout.count()) + " ms)");
        for (auto& s : shards_) asio::post(s->io(), [s = s.get()] { s->begin_shutdown(); });
        shutdown_deadline_.expires_after(cfg_.limits.shutdown_timeout);
        shutdown_deadline_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            log::warn("shutdown_timeout_ms reached with requests still running: abandoning "
                      "them (raise /limits/shutdown_timeout_ms to let them finish)");
            for (auto& s : shards_) s->io().stop();
        });
    }

    void shard_finished() {
        if (++finished_shards_ < shards_.size()) return;
        shutdown_deadline_.cancel();
        signals_.cancel();
    }

    server_config cfg_;
    server_options options_;
    private_dir dir_;
    std::uint64_t generation_ = 1;
    plugin_map plugins_;
    asio::io_context control_{1};
    asio::signal_set signals_{control_, SIGINT, SIGTERM, SIGHUP};
    asio::steady_timer shutdown_deadline_{control_};
    std::vector<std::unique_ptr<shard>> shards_;
    std::size_t finished_shards_ = 0;
};

}  // namespace

void check_plugins(const server_config& cfg) {
    private_dir dir;
    for (const auto& spec : cfg.plugins) plugin_version{spec, dir.path(), 1};
}

int serve(server_config cfg, const server_options& options) {
    server s{std::move(cfg), options};
    return s.run();
}

}  // namespace plugd
