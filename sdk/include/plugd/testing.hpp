// plugd::testing: run a plugin in the test's own process and call it, without a server or
// a socket. Link the CMake target plugd::testing. Since SDK 1.3.
//
//     plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"greeting", "Hi"}}}};
//     CHECK(host.call("world") == "Hi, world!");
//
// The host runs the plugin on the core's own facilities (timers, offload threads, shared
// state, background tasks, outbound connections), on worker threads of its own, exactly as
// plugd does. PLUGIN_FILE is the built plugin's path (CMake: a compile definition with
// $<TARGET_FILE:plugin>, as `plugd new-plugin` writes it). Nothing here asserts: a call returns the
// reply or throws what the handler threw, so it works with doctest, Catch2, GoogleTest or a plain
// main().
//
// A chain, as server.json's `"chain": ["auth", "kv"]` makes one (since SDK 1.4): the filters
// run before the host's plugin, in order, on every call.
//
//     plugd::testing::options o;
//     o.filters.push_back({.plugin_file = AUTH_FILE, .config = {{"tokens", {"s3cret"}}}});
//     plugd::testing::plugin_host host{KV_FILE, o};
//     CHECK(host.call_http("POST", "/", "GET k").status == 401);  // no token
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <plugd/plugin.hpp>

namespace plugd::testing {

/// A filter that runs before the host's plugin (options::filters), as server.json's
/// `"chain": ["auth", "limit", "kv"]` puts the instances "auth" and "limit" before "kv".
/// The host loads and starts it as plugd does, with its own instance name, config, shared
/// state and log lines, on the same worker threads and facilities. Since SDK 1.4.
struct chain_link {
    /// The built filter (a `.so` made by plugd_add_plugin()); unused when `make` is set.
    /// A plugin that does not override handler::filter is refused, as plugd refuses it
    /// anywhere but last in a chain.
    std::filesystem::path plugin_file;
    /// Its `config` object, as `/plugins/<instance>/config`.
    nlohmann::json config = nlohmann::json::object();
    /// Its instance name (ctx.instance_name(), its shared state, its log lines); empty: the
    /// file's name without `.so` ("bearer_auth"), or "filter<N>" (its index in
    /// options::filters) for a compiled-in class. Each instance of a host needs its own.
    std::string instance;
    /// A filter class compiled into the test instead of a file (of<T>() sets it).
    handler* (*make)(context&) = nullptr;

    /// The filter class `Filter`, compiled into the test: no `.so` needed.
    template <typename Filter>
    static chain_link of(nlohmann::json config = nlohmann::json::object(),
                         std::string instance = {}) {
        static_assert((detail::entry_points<Filter>() & detail::filters) != 0,
                      "plugd::testing::chain_link::of<T>: T does not override "
                      "plugd::handler::filter(plugd::request, plugd::reply&, plugd::chain_next), "
                      "so it cannot stand before another plugin in a chain");
        chain_link link;
        link.config = std::move(config);
        link.instance = std::move(instance);
        link.make = [](context& ctx) -> handler* { return new Filter(ctx); };
        return link;
    }
};

/// How a plugin_host runs its plugin. Every member has a default: `{}` is a host with an
/// empty config, two worker threads and real time.
struct options {
    /// The instance's `config` object, as server.json's `/plugins/<name>/config`.
    nlohmann::json config = nlohmann::json::object();
    /// The instance name (ctx.instance_name(), log lines).
    std::string instance = "test";
    /// Worker threads, each with its own event loop, as server.json's `threads`. Calls go to
    /// thread 0 unless told otherwise; call_concurrently() spreads over all of them.
    unsigned threads = 2;
    /// context::offload's threads and queue, as server.json's `offload_threads` and
    /// `offload_queue`.
    unsigned offload_threads = 2;
    std::size_t offload_queue = 1024;
    /// The byte budget of ctx.shared(), as `/plugins/<name>/shared_bytes`.
    std::size_t shared_bytes = std::size_t{64} << 20;
    /// Time stands still: sleep_for and every's pause end only when advance() moves the
    /// clock past them. Off: real time.
    bool manual_clock = false;
    /// How long any wait of the harness may last (a reply, a reload's drain, the end of the
    /// host) before it throws std::runtime_error saying what it waited for.
    std::chrono::milliseconds wait_limit{10000};
    /// Also write the plugin's log lines to stderr (warnings and errors always are).
    bool echo_log = false;
    /// Filters that every call (call, call_http, start, call_concurrently) runs through
    /// before the plugin, in this order: each gets filter() with the rest of the chain as
    /// its `next`, the plugin last gets handle(), and what one attaches to the request
    /// (request::attach) the later ones read, for that call only. reload() replaces the
    /// plugin alone; the filters are kept. Empty: the plugin alone. Since SDK 1.4.
    std::vector<chain_link> filters;
};

/// An HTTP reply, for plugins served on `http` listeners.
struct http_reply {
    int status = 200;
    std::string fields;  ///< the "Name: value\r\n" lines the handler set
    std::string body;
};

class plugin_host;

/// A call in flight (plugin_host::start). Movable; destroying it does not cancel the call.
/// A call that threw keeps its plugin version loaded until it is destroyed (the exception
/// may be of a type the plugin defines), so a reload's old version drains only then.
class pending_call {
  public:
    pending_call(pending_call&&) noexcept;
    pending_call& operator=(pending_call&&) noexcept;
    ~pending_call();

    /// Whether the handler has returned or thrown.
    bool ready() const;
    /// Waits (up to wait_limit) and returns the reply, or rethrows what the handler threw.
    /// A cancelled call throws boost::system::system_error (operation_aborted), as the
    /// handler's pending host call does.
    std::string get();
    /// Cancels the call as plugd does when a request times out or a reload's drain runs
    /// out: a terminal cancellation delivered on the call's thread after everything already
    /// queued there, so a handler that awaits something is cancelled in that wait. Only
    /// while its host exists.
    void cancel();

  private:
    friend class plugin_host;
    struct state;
    explicit pending_call(std::shared_ptr<state> s) noexcept;
    std::shared_ptr<state> state_;
};

/// The client's end of a whole connection served by the plugin's `serve` (framing `raw`).
/// Every wait lasts at most wait_limit, then throws std::runtime_error. Movable. Its
/// connection may subscribe to topics (since SDK 1.5): connections of one host reach each
/// other through them, as a `raw` listener's do.
class raw_client {
  public:
    raw_client(raw_client&&) noexcept;
    raw_client& operator=(raw_client&&) noexcept;
    /// Closes the connection if close() was not called (an exception of serve is dropped).
    ~raw_client();

    /// Sends all of `bytes`.
    void write(std::string_view bytes);
    /// Reads up to and including `delimiter`; throws std::runtime_error when the plugin
    /// closes the connection first.
    std::string read_until(std::string_view delimiter);
    /// Reads exactly `size` bytes; throws when the plugin closes first.
    std::string read_exactly(std::size_t size);
    /// Everything the plugin sends until it closes the connection.
    std::string read_to_end();
    /// Ends the client's side (the plugin's next read returns 0) and waits until serve()
    /// has returned; rethrows what serve() threw.
    void close();

  private:
    friend class plugin_host;
    struct state;
    explicit raw_client(std::shared_ptr<state> s) noexcept;
    std::shared_ptr<state> state_;
};

/// One plugin instance, loaded and started, with the host facilities of a real plugd.
/// Construction loads and starts it; destruction cancels its tasks, waits for its calls,
/// stops and unloads it. Plugin errors (a refused config, a wrong ABI) throw
/// std::runtime_error with plugd's own message. Not thread-safe: use a host from one
/// thread (the calls themselves run on its worker threads).
class plugin_host {
  public:
    /// Loads the plugin built at `plugin_file` (a `.so` made by plugd_add_plugin()).
    explicit plugin_host(const std::filesystem::path& plugin_file, options opts = {});
    /// Runs the handler class `Handler` compiled into the test itself: no `.so` needed.
    template <typename Handler>
    static plugin_host of(options opts = {}) {
        return plugin_host{[](context& ctx) -> handler* { return new Handler(ctx); },
                           std::move(opts)};
    }
    ~plugin_host();
    plugin_host(plugin_host&&) noexcept;
    plugin_host& operator=(plugin_host&&) = delete;

    /// Calls handle() with `message` (through options::filters first, when there are any)
    /// on worker thread 0 and returns the reply; rethrows what the handler or a filter
    /// threw.
    std::string call(std::string_view message);
    /// Calls handle() as an `http` listener does: `message()` is the body when there is
    /// one, otherwise the target without its `/`, URL-decoded.
    http_reply call_http(std::string_view method, std::string_view target,
                         std::string_view body = {},
                         const std::vector<std::pair<std::string, std::string>>& headers = {});
    /// Starts a call on worker `thread` and returns at once.
    pending_call start(std::string_view message, unsigned thread = 0);
    /// Starts every message at once, spread over all worker threads (message i on thread
    /// i % threads), and returns the replies in the messages' order; rethrows the first
    /// failure in that order. The check for handlers that share state without care.
    std::vector<std::string> call_concurrently(const std::vector<std::string>& messages);
    /// Opens a whole connection to the plugin's serve(), as a `raw` listener does, and
    /// returns once serve() has run up to its first wait (what it does first, subscribing
    /// to a topic say, is done). Throws std::runtime_error with options::filters set: a raw
    /// listener has no chain.
    raw_client connect();

    /// A reload to the current file (rebuilt since, or not) with `config`, as plugd does:
    /// the new version is constructed and started, calls from now on go to it, calls and
    /// connections still running finish on the old one, whose tasks are cancelled; the old
    /// version is stopped and unloaded once they have ended. ctx.shared() is kept. Throws
    /// (and keeps the old version) when the new one refuses.
    void reload(nlohmann::json config);
    /// The same to another plugin file (the next build of the plugin).
    void reload(const std::filesystem::path& plugin_file, nlohmann::json config);
    /// The same to a handler class compiled into the test.
    template <typename Handler>
    void reload_to(nlohmann::json config) {
        reload_compiled([](context& ctx) -> handler* { return new Handler(ctx); },
                        std::move(config));
    }
    /// Versions replaced by a reload that are still running a call, a connection or a task.
    std::size_t draining_versions();

    /// With options::manual_clock: moves time forward, waking every sleep_for due on the
    /// way (in order of their deadlines) and letting each woken coroutine run to its next
    /// wait on the worker threads (work it hands to an offload thread or a socket is not
    /// waited for). Throws std::logic_error with a real clock.
    void advance(std::chrono::milliseconds duration);

    /// The instance's shared state (what ctx.shared() returns), to seed or inspect it.
    shared_map& shared();
    /// The lines the plugin logged (ctx.log, and plugd's lines about it), oldest first,
    /// each "<level> <message>", e.g. "info plugin test: greeting with \"Hi\"".
    std::vector<std::string> log_lines() const;

    // ---- since SDK 1.4 ----

    /// The shared state of the instance named `instance`: the plugin's (options::instance)
    /// or a filter's (chain_link::instance). Throws std::out_of_range naming the instances
    /// when there is none of that name.
    shared_map& shared(std::string_view instance);

    // ---- since SDK 1.5 ----

    /// Publishes `message` to `topic` (context::topics) from the test's thread, as a task or
    /// an offloaded job would: the connections (connect()) subscribed to it receive it from
    /// their next(). The host's topics are its own, shared by its plugin and filters, and
    /// every subscriber has plugd's default limits (max_queued_messages 1024, slow_subscriber
    /// "close"). Throws what topics::publish throws.
    void publish(std::string_view topic, std::string_view message,
                 message_type type = message_type::text);

  private:
    using factory = handler* (*)(context&);
    plugin_host(factory make, options opts);
    void reload_compiled(factory make, nlohmann::json config);
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace plugd::testing
