// shard: the accept loop and the shard-local routing of requests to plugin versions.
#include "shard.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "connection.hpp"
#include "log.hpp"

namespace plugd {

shard::shard(unsigned index, const struct limits& l, std::size_t max_connections)
    : index_{index}, limits_{l}, max_connections_{max_connections}, work_{io_.get_executor()} {}

shard::~shard() { join(); }

void shard::start(std::function<void()> on_exit) {
    thread_ = std::thread{[this, on_exit = std::move(on_exit)] {
        io_.run();
        on_exit();
    }};
}

void shard::join() {
    if (thread_.joinable()) thread_.join();
}

plugin_ref* shard::current_plugin(const std::shared_ptr<plugin_version>& version) {
    auto& slot = plugins_[version->spec().name];
    if (slot && slot->version == version) return slot.get();
    if (slot) {
        slot->retired = true;
        if (slot->in_flight == 0) slot->version.reset();
        else retiring_.push_back(std::move(slot));
    }
    slot = std::make_unique<plugin_ref>();
    slot->version = version;
    return slot.get();
}

void shard::request_done(plugin_ref& p) noexcept {
    if (--p.in_flight > 0 || !p.retired) return;
    // The last request on a replaced version: drop this shard's reference. The
    // plugin_version itself goes when every shard has dropped its own.
    p.version.reset();
    std::erase_if(retiring_, [&](const auto& r) { return r.get() == &p; });
}

void shard::add_route(std::shared_ptr<route> r, std::shared_ptr<plugin_version> version) {
    r->plugin = current_plugin(version);
    routes_[r->spec.name] = r;
    asio::co_spawn(io_, accept_loop(std::move(r)), asio::detached);
}

asio::awaitable<void> shard::accept_loop(std::shared_ptr<route> r) {
    const auto as_tuple = asio::as_tuple(asio::use_awaitable);
    const std::size_t limit = max_connections_;
    for (;;) {
        auto [ec, socket] = co_await r->acceptor.async_accept(as_tuple);
        if (ec == asio::error::operation_aborted || !r->acceptor.is_open()) co_return;
        if (ec) {
            // Out of descriptors (EMFILE/ENFILE) or memory: retrying at once would spin.
            log::warn("listener " + r->spec.name + ": accept failed: " + ec.message() +
                      "; retrying in 100 ms");
            asio::steady_timer pause{io_, std::chrono::milliseconds{100}};
            co_await pause.async_wait(as_tuple);
            continue;
        }
        if (connections_ >= limit || r->closing) {
            // Over the limit: close at once, so the client learns immediately instead of
            // waiting in the backlog.
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        ++connections_;
        asio::co_spawn(io_, serve_connection(*this, r, std::move(socket)),
                       [this](std::exception_ptr e) {
                           --connections_;
                           if (!e) return;
                           try {
                               std::rethrow_exception(e);
                           } catch (const std::exception& ex) {
                               log::error(std::string{"connection ended by an error: "} +
                                          ex.what());
                           }
                       });
    }
}

void shard::close_route(route& r) {
    r.closing = true;
    boost::system::error_code ignored;
    r.acceptor.close(ignored);
    for (connection* c : r.connections) c->close_when_idle();
}

void shard::begin_shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    for (auto& [name, r] : routes_) close_route(*r);
    routes_.clear();
    work_.reset();
}

}  // namespace plugd
