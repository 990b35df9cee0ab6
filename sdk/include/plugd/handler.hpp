// plugd::handler: the interface a plugin implements.
#pragma once

#include <stdexcept>

#include <plugd/chain.hpp>
#include <plugd/connection.hpp>
#include <plugd/reply.hpp>
#include <plugd/request.hpp>
#include <plugd/session.hpp>
#include <plugd/task.hpp>

namespace plugd {

/// A request handler. The core constructs one per plugin instance, from a `plugd::context&`
/// (see `PLUGD_PLUGIN`): construction reads and validates the config and may throw, with a
/// message naming the config key, to refuse it. The object is then valid; no `init` step.
///
/// Life of an instance: constructed, `start()`, any number of concurrent `handle()` calls
/// (one per request), `serve()` calls (one per connection of a `raw` listener) or
/// `serve_session()` calls (one per WebSocket session), `stop()`
/// once the last of them and the last background task and offloaded job have ended,
/// destroyed, library unloaded. Before that, plugd runs the constructor and `start()` in a
/// short-lived child process (the trial load; not again for bytes and config that passed
/// one before, and not in plugd::testing), which then exits without `stop()` or
/// destructors: a crash there refuses the start or the reload instead of ending plugd. So
/// their side effects (files, registrations) may happen twice.
///
/// Rules for plugin code, because the library is unloaded while the server keeps running:
/// no `thread_local` objects with destructors (they pin the library in memory), no threads,
/// Asio timers or sockets of its own (use `context`), nothing left running after `stop()`.
class handler {
  public:
    virtual ~handler() = default;

    /// Called once on the control thread before the first request. May throw to refuse the
    /// instance: the server does not start (or the reload fails, and the running version
    /// serves on).
    virtual void start() {}

    /// Called once on the control thread, if start() returned, after the last `handle` or
    /// `serve` call, background task and offloaded job of this version has ended (shutdown,
    /// or this version replaced by a reload). Must not throw.
    virtual void stop() noexcept {}

    /// Answers one request by appending to `out` (on `line`, `oneshot` and `http`
    /// listeners). The default refuses: a plugin written only for `raw` listeners need not
    /// override it.
    /// @warning Called concurrently from multiple worker threads: shared state needs
    /// synchronisation. Each call runs on the thread of its connection and may `co_await`.
    /// An exception ends only this request: the client gets `ERR internal error`, the
    /// message is logged with the instance name.
    virtual task<void> handle(request, reply&) {
        throw std::logic_error(
            "this plugin serves whole connections only: use it on a listener with \"framing\": "
            "\"raw\"");
        co_return;
    }

    // ---- since SDK 1.3 (appended: the members above keep their places) ----

    /// Serves one whole connection on a `raw` listener, called as soon as it is accepted
    /// (the plugin may speak first): reads and writes `conn` in the plugin's own protocol
    /// until the client leaves (a read returns 0), then returns. The
    /// connection keeps the version it started on until then, across reloads, bounded by
    /// `reload_drain_timeout_ms` (then its pending call throws operation_aborted). An
    /// exception closes only this connection and is logged with the instance name. The
    /// default refuses, for plugins written for the other framings.
    /// @warning Called concurrently for many connections, as `handle` is.
    virtual task<void> serve(connection&) {
        throw std::logic_error(
            "this plugin does not serve whole connections: override plugd::handler::serve, or "
            "use a line, oneshot or http listener");
        co_return;
    }

    // ---- since SDK 1.4 (appended: the members above keep their places) ----

    /// Makes the plugin a filter: an instance that may stand before others in a chain
    /// (server.json's `"chain": ["auth", "limit", "quotes"]`; every instance but the last
    /// must be a filter). Called instead of `handle` when the instance is not last. It may
    /// answer by itself and stop the chain (write `out`, set a status such as 401, return),
    /// or `co_await next(req, out)` to run the rest and then read or change the reply (its
    /// status, headers, body), and it may attach values to `req` for the plugins after it
    /// (request::attach). The default refuses: a plugin that does not override it cannot
    /// stand before another (plugd says so at -t, start and reload, naming it).
    /// @warning Called concurrently, as `handle` is.
    virtual task<void> filter(request, reply&, chain_next) {
        throw std::logic_error(
            "this plugin is not a filter: it can only be the last instance of a chain");
        co_return;
    }

    // ---- since SDK 1.5 (appended: the members above keep their places) ----

    /// Serves one WebSocket session on an `http` listener: called after an upgrade request
    /// to this instance's route passed the route's filters and the core answered 101. It
    /// owns the session until it returns (then the core closes with 1000 if the plugin did
    /// not close it; 1011 if it threw). The session keeps the version it started on across
    /// reloads, as a raw connection does, until `reload_drain_timeout_ms` (the client then
    /// gets 1001). A plugin that serves only sessions need not override `handle`: a plain
    /// request to its route gets 426 Upgrade Required. The default refuses.
    /// @warning Called concurrently for many sessions, as `handle` is.
    virtual task<void> serve_session(session&) {
        throw std::logic_error(
            "this plugin does not serve WebSocket sessions: override "
            "plugd::handler::serve_session(plugd::session&)");
        co_return;
    }
};

}  // namespace plugd
