// shard: one worker thread with its own io_context, acceptors, connections and routes.
//
// Everything in a shard is touched only by its own thread (the control thread hands work
// over with asio::post), so the request path needs no lock and no shared atomic write.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "plugin_version.hpp"

namespace plugd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// A shard's handle on one plugin version. Requests count themselves in and out of
/// `in_flight` (a plain integer: only this shard's thread touches it). Once the version is
/// replaced (`retired`) and idle, the shard drops its `version` reference; the last shard to
/// do so unloads it.
struct plugin_ref {
    std::shared_ptr<plugin_version> version;
    std::uint64_t in_flight = 0;
    bool retired = false;
};

struct connection;

/// A shard's part of one listener: its acceptor, the plugin it routes to, its connections.
/// Connections hold it by shared_ptr, so it outlives a listener removed by a reload until
/// its last connection has closed.
struct route {
    route(asio::io_context& io, listener_spec s) : spec{std::move(s)}, acceptor{io} {}
    listener_spec spec;
    tcp::acceptor acceptor;
    plugin_ref* plugin = nullptr;  ///< read at the start of each request
    std::list<connection*> connections;
    bool closing = false;  ///< no new requests: finish the current one, then close
};

class shard {
public:
    shard(unsigned index, const limits& limits, std::size_t max_connections);
    ~shard();

    unsigned index() const noexcept { return index_; }
    asio::io_context& io() noexcept { return io_; }

    /// Starts the worker thread. `on_exit` runs on that thread once the io_context has no
    /// more work (after begin_shutdown and the last connection).
    void start(std::function<void()> on_exit);
    void join();

    // The members below run on the shard's own thread (reach them with asio::post).

    /// Serves `listener` (its acceptor already bound on this shard's io_context) with
    /// `version`, which becomes the shard's current version of that plugin instance.
    void add_route(std::shared_ptr<route> r, std::shared_ptr<plugin_version> version);
    /// Stops accepting everywhere, closes idle connections, lets busy ones finish their
    /// request, and lets the io_context run out of work.
    void begin_shutdown();

    // Used by connections.
    const struct limits& limits() const noexcept { return limits_; }
    /// Counts a request out of `p`; drops the reference to a retired version when idle.
    void request_done(plugin_ref& p) noexcept;

private:
    plugin_ref* current_plugin(const std::shared_ptr<plugin_version>& version);
    asio::awaitable<void> accept_loop(std::shared_ptr<route> r);
    void close_route(route& r);

    unsigned index_;
    struct limits limits_;
    std::size_t max_connections_;
    std::size_t connections_ = 0;
    bool shutting_down_ = false;
    // Member order is destruction order, reversed: routes and then the io_context (with
    // any coroutine frames it still holds) go before the plugin versions they may call.
    std::map<std::string, std::unique_ptr<plugin_ref>> plugins_;  ///< by instance name
    std::vector<std::unique_ptr<plugin_ref>> retiring_;
    asio::io_context io_{1};  // run by one thread only
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
    std::map<std::string, std::shared_ptr<route>> routes_;
};

}  // namespace plugd
