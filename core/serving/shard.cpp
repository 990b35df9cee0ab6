// shard: the accept loop and the shard-local routing of requests to plugin versions.
#include "serving/shard.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include "faults/crash_report.hpp"
#include "host/host.hpp"
#include "host/suspension.hpp"
#include "log.hpp"
#include "serving/connection.hpp"
#include "serving/websocket_session.hpp"

namespace plugd {
namespace {

// True at most once per 5 s for the whole process: every shard runs out of descriptors at
// the same moment, and one line says it. Touched only on the accept error path.
bool should_warn_accept_failure() noexcept {
    static std::atomic<std::int64_t> last_ms{std::numeric_limits<std::int64_t>::min() / 2};
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t last = last_ms.load(std::memory_order_relaxed);
    return now - last >= 5000 &&
           last_ms.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

}  // namespace

shard::shard(unsigned index, unsigned shards, traffic_ledger& ledger,
             std::function<void()> on_release)
    : index_{index},
      shards_{shards},
      on_release_{std::move(on_release)},
      ledger_{ledger},
      topic_counts_{ledger.topics(index)},
      work_{io_.get_executor()} {}

shard::~shard() {
    join();
    // Left only when a shutdown abandoned requests (shutdown_timeout_ms) and stopped the
    // io_context: delete them while it still exists (their sockets belong to it). The
    // coroutine frames that refer to them are destroyed with it and do not touch them.
    while (!connections_.empty()) delete connections_.front().self;
}

void shard::start(stall_monitor& stalls, std::function<void()> on_exit) {
    stalls_ = &stalls;
    thread_ = std::thread{[this, on_exit = std::move(on_exit)] {
        host::enter_serving_thread(io_, index_);
        // OpenSSL writes to a TLS client's socket with write(2): a client gone would raise
        // SIGPIPE, which ends the process. Blocked here, it stays pending on this thread
        // and the write fails with EPIPE instead.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        this_thread_suspend_hook() = {&shard::write_unsent, this};
        prepare_thread_for_crash_report();
        stalls_->watch_this_thread(index_);
        asio::co_spawn(io_, heartbeat(), [](std::exception_ptr) {});
        io_.run();
        on_exit();
    }};
}

// The stall monitor's evidence that this thread's event loop keeps coming back.
asio::awaitable<void> shard::heartbeat() {
    const auto as_tuple = asio::as_tuple(asio::deferred);
    while (!shutting_down_) {
        stalls_->beat(index_);
        heartbeat_.expires_after(stalls_->beat_interval());
        co_await heartbeat_.async_wait(as_tuple);
    }
}

void shard::join() {
    if (thread_.joinable()) thread_.join();
}

void shard::release(plugin_ref& p) noexcept {
    p.version.reset();
    on_release_();
}

void shard::retire(std::unique_ptr<plugin_ref> p) {
    p->retired = true;
    if (p->in_flight == 0) {
        release(*p);
    } else {
        retiring_.push_back(std::move(p));
    }
}

void shard::link_done(plugin_ref& p) noexcept {
    if (--p.in_flight > 0 || !p.retired) return;
    // The last request on a replaced version.
    release(p);
    std::erase_if(retiring_, [&](const auto& r) { return r.get() == &p; });
}

const in_flight_cap* shard::request_begins(dispatch_table& table,
                                           const chain_slot& chain) noexcept {
    for (std::size_t i = 0; i < chain.caps.size(); ++i) {
        const in_flight_cap& cap = chain.caps[i];
        if (cap.running->fetch_add(1, std::memory_order_relaxed) < cap.limit) continue;
        for (std::size_t j = 0; j <= i; ++j)
            chain.caps[j].running->fetch_sub(1, std::memory_order_relaxed);
        return &cap;
    }
    ++table.in_flight;
    for (plugin_ref* link : chain.links) ++link->in_flight;
    return nullptr;
}

void shard::request_done(dispatch_table& table, const chain_slot& chain) noexcept {
    for (const in_flight_cap& cap : chain.caps)
        cap.running->fetch_sub(1, std::memory_order_relaxed);
    for (plugin_ref* link : chain.links) link_done(*link);
    table_done(table);
}

void shard::table_done(dispatch_table& table) noexcept {
    if (--table.in_flight > 0 || !table.retired) return;
    std::erase_if(retired_tables_, [&](const auto& t) { return t.get() == &table; });
}

void shard::session_begins(dispatch_table& table, plugin_ref& link) noexcept {
    ++table.in_flight;
    ++link.in_flight;
}

void shard::session_ends(dispatch_table& table, plugin_ref& link) noexcept {
    link_done(link);
    table_done(table);
}

void shard::connection_opened(client_connection& c) noexcept {
    ++c.via->open_connections;
    connections_.push_back(c.in_shard);
}

void shard::connection_closed(client_connection& c) noexcept {
    --c.via->open_connections;
    c.in_shard.unlink();
    // The sweeper runs on through a shutdown while connections remain (it ends lingering
    // ones); the last one lets it, and so the io_context, stop.
    if (shutting_down_ && connections_.empty()) sweeper_.cancel();
}

void shard::hold_unsent(client_connection& c) noexcept {
    c.idle.unlink();
    unsent_.push_back(c.idle);
}

void shard::write_unsent(void* self) noexcept {
    connection_list& unsent = static_cast<shard*>(self)->unsent_;
    while (!unsent.empty()) {
        client_connection& c = *unsent.front().self;
        c.idle.unlink();
        c.write_unsent();
    }
}

bool shard::reclaim_idle(shard_listener& r) {
    if (r.idle.empty()) return false;
    r.idle.front().self->close_when_idle();  // unlinks it
    ++r.reclaimed;
    r.warnings[warning_kind::connection_limit].count();
    return true;
}

namespace {

// How a summary line of each kind says what the repeats were (after "N more") and what to
// do; the listener is always named, the plugin when the repeats are requests it served.
struct summary_words {
    bool names_plugin;
    const char* what;
    const char* advice;
};
constexpr std::array<summary_words, warning_kinds> summary_of{{
    {true, "request(s) answered ERR busy",
     "the offload queue was full; raise /offload_queue or /offload_threads if this persists"},
    {true, "request(s) failed by the plugin (ERR internal error)",
     "the first one's error is logged above"},
    {true, "request(s) exceeded request_timeout_ms and were cancelled", ""},
    {false, "client(s) did not send a whole request within request_timeout_ms: answered 408", ""},
    {false, "client(s) did not send the rest of a message within request_timeout_ms: closed", ""},
    {false, "client(s) did not read their replies for write_timeout_ms: closed", ""},
    {false, "", ""},  // connection_limit: a line of its own below
    {false, "request(s) refused at a plugin's max_in_flight (503 / ERR busy)",
     "the first one's line above names the plugin; raise its max_in_flight if it can take "
     "more"},
    {false, "subscriber(s) fell more than max_queued_messages behind on a topic",
     "the first one's line above says what was done; raise /limits/max_queued_messages if "
     "these clients are only bursty"},
}};

}  // namespace

void shard::report_repeated_warnings(bool flush) {
    const auto now = std::chrono::steady_clock::now();
    const std::string thread = " (thread " + std::to_string(index_) + "): ";
    for (auto& [name, r] : listeners_) {
        for (std::size_t k = 0; k < warning_kinds; ++k) {
            auto& w = r->warnings.kinds[k];
            const auto due = flush ? w.flush(now) : w.due(now);
            if (due.count == 0) continue;
            const auto kind = static_cast<warning_kind>(k);
            if (kind == warning_kind::connection_limit) {
                const auto share = (r->spec.limits.max_connections + shards_ - 1) / shards_;
                log::warn("listener " + name + thread + "at max_connections (" +
                              std::to_string(share) + " on this thread): closed " +
                              std::to_string(r->reclaimed) +
                              " idle connection(s) to admit new ones, refused " +
                              std::to_string(r->refused) +
                              " while every connection was in a request; raise "
                              "/limits/max_connections if these clients are legitimate",
                          {log::tag("listener", name)});
                r->reclaimed = r->refused = 0;
                continue;
            }
            const auto& words = summary_of[k];
            const auto seconds = std::chrono::round<std::chrono::seconds>(due.over).count();
            // A listener with routes has a plugin per route: the first line named it.
            const bool names_plugin = words.names_plugin && !r->spec.plugin.empty();
            std::string line = names_plugin ? "plugin " + r->spec.plugin + " on listener " + name
                                            : "listener " + name;
            line += thread + std::to_string(due.count) + " more " + words.what;
            if (seconds > 0) line += " in the last " + std::to_string(seconds) + " s";
            line += " (repeats are logged at most every 5 s";
            line += *words.advice ? std::string{"; "} + words.advice + ")" : ")";
            const std::string repeats = std::to_string(due.count);
            if (names_plugin) {
                log::warn(line, {log::tag("plugin", r->spec.plugin), log::tag("listener", name),
                                 log::tag("repeats", repeats)});
            } else {
                log::warn(line, {log::tag("listener", name), log::tag("repeats", repeats)});
            }
        }
    }
}

void shard::apply(shard_update update) {
    // Counted repeats are reported before the routes change (they name the plugin the
    // listener routed to), and the new version's first warning of each kind is logged.
    report_repeated_warnings(true);
    // Plugins first: routes below must only ever point at current versions. A version keeps
    // its plugin_ref (its requests count in and out of it) for as long as it serves on
    // either side of a canary: a promoted canary's become the serving ones as they are.
    std::map<const plugin_version*, std::unique_ptr<plugin_ref>> held;
    for (auto& [name, ref] : plugins_) held[ref->version.get()] = std::move(ref);
    for (auto& [name, ref] : canary_plugins_) held[ref->version.get()] = std::move(ref);
    plugins_.clear();
    canary_plugins_.clear();
    const auto keep = [&](std::shared_ptr<plugin_version> version) {
        const auto it = held.find(version.get());
        if (it == held.end())
            return std::make_unique<plugin_ref>(plugin_ref{std::move(version), 0, false});
        auto ref = std::move(it->second);
        held.erase(it);
        return ref;
    };
    for (auto& [name, version] : update.plugins) plugins_[name] = keep(std::move(version));
    if (update.canary) {
        for (auto& [name, version] : update.canary->plugins) {
            const auto serving = plugins_.find(name);
            if (serving == plugins_.end() || serving->second->version != version)
                canary_plugins_[name] = keep(version);
        }
        update.canary->plugins.clear();  // canary_ keeps no reference of its own
        split_ = update.canary->split;
        split_.state = canary_split::mix(update.canary->generation ^ (index_ + 1));
        reset_canary_stats(*update.canary);
    }
    for (auto& [version, ref] : held) retire(std::move(ref));
    canary_ = std::move(update.canary);
    for (const auto& name : update.removed) {
        auto it = listeners_.find(name);
        if (it == listeners_.end()) continue;
        close_listener(*it->second);
        listeners_.erase(it);
    }
    for (const auto& spec : update.kept) {
        auto& r = *listeners_.at(spec.name);
        r.spec.framing = spec.framing;  // used by connections accepted from now on
        r.spec.plugin = spec.plugin;
        r.spec.chain = spec.chain;
        r.spec.routes = spec.routes;
        r.spec.limits = spec.limits;  // read at each use: applies to open connections too
    }
    for (auto& r : update.added) {
        listeners_[r->spec.name] = r;
        asio::co_spawn(io_, accept_loop(std::move(r)), [](std::exception_ptr) {});
    }
    for (auto& [name, r] : listeners_) {  // new handshakes use the new certificate
        if (!update.tls) break;
        const auto it = update.tls->find(name);
        r->tls = it != update.tls->end() ? it->second : nullptr;
    }
    // The sweeper enforces every connection's timeouts; ticking at an eighth of the
    // shortest bounds how late it notices to an eighth.
    auto shortest = std::chrono::milliseconds{8000};
    // Every listener gets a new table, even one whose chains did not change: its links
    // point at plugin_refs, which change with any version. The old one goes when its last
    // request ends.
    for (auto& [name, r] : listeners_) {
        const auto& l = r->spec.limits;
        shortest = std::min({shortest, l.idle_timeout, l.request_timeout, l.write_timeout});
        if (r->spec.framing == framing_kind::http) {  // its WebSocket sessions' pings and timeout
            const websocket_settings& ws = r->spec.websocket;
            shortest = std::min(shortest, ws.idle_timeout);
            if (ws.ping_interval.count() > 0) shortest = std::min(shortest, ws.ping_interval);
        }
        if (update.count_traffic) {
            auto& traffic = listener_stats_[name];
            if (!traffic) traffic = ledger_.listener(index_, name);
            r->traffic = traffic;
        } else {
            r->traffic = nullptr;
        }
        auto table = make_table(*r, update.count_traffic, false);
        r->table = table.get();
        swap_table(tables_, name, std::move(table));
        auto canary_table = canary_ ? make_table(*r, update.count_traffic, true) : nullptr;
        r->canary_table = canary_table.get();
        swap_table(canary_tables_, name, std::move(canary_table));
    }
    for (auto* tables : {&tables_, &canary_tables_}) {  // of removed listeners, of a canary
        for (auto it = tables->begin(); it != tables->end();) {
            if (listeners_.contains(it->first) && it->second) {
                ++it;
                continue;
            }
            swap_table(*tables, it->first, nullptr);
            it = tables->erase(it);
        }
    }
    sweep_interval_ = std::max(shortest / 8, std::chrono::milliseconds{5});
    if (!sweeping_ && !listeners_.empty()) {
        sweeping_ = true;
        asio::co_spawn(io_, sweep(), [](std::exception_ptr) {});
    }
}

void shard::swap_table(std::map<std::string, std::unique_ptr<dispatch_table>>& tables,
                       const std::string& name, std::unique_ptr<dispatch_table> table) {
    auto& slot = tables[name];
    if (slot) {
        slot->retired = true;
        if (slot->in_flight > 0) retired_tables_.push_back(std::move(slot));
    }
    slot = std::move(table);
}

void shard::reset_canary_stats(const canary_update& c) {
    for (const auto& name : c.judged) {
        for (const bool canary_side : {false, true}) {
            auto& stats = canary_stats_[{name, canary_side}];
            if (!stats) stats = ledger_.canary(index_, name);
            // A master may read the record meanwhile (another process): it keeps what it
            // read only if `canary` is the same before and after (traffic_ledger).
            __atomic_store_n(&stats->canary, std::uint64_t{0}, __ATOMIC_RELAXED);
            std::atomic_thread_fence(std::memory_order_release);
            stats->generation = canary_side ? c.generation : c.serving_generation;
            stats->requests = stats->errors = 0;
            stats->latency.fill(0);
            __atomic_store_n(&stats->canary, c.generation, __ATOMIC_RELEASE);
        }
    }
}

std::unique_ptr<dispatch_table> shard::make_table(const shard_listener& l, bool count_traffic,
                                                  bool canary) {
    auto table = std::make_unique<dispatch_table>();
    // While a canary runs, each side's requests count in series of their own (/metrics'
    // `generation` label), and in the judge's figures of each instance the canary changed.
    const std::string generation = !canary_ ? std::string{}
                                   : canary ? std::to_string(canary_->generation)
                                            : std::to_string(canary_->serving_generation);
    const auto version_of = [&](const std::string& name) {
        if (canary) {
            if (const auto it = canary_plugins_.find(name); it != canary_plugins_.end())
                return it->second.get();
        }
        return plugins_.at(name).get();
    };
    const auto add_chain = [&](const std::vector<std::string>& names, const std::string& route) {
        chain_slot& chain = table->chains.emplace_back();
        for (const auto& name : names) {
            plugin_ref* ref = version_of(name);
            if (canary_ && std::find(canary_->judged.begin(), canary_->judged.end(), name) !=
                               canary_->judged.end()) {
                chain.judged.push_back(canary_stats_.at({name, canary}));
                chain.judged_canary = canary_->generation;
            }
            chain.links.push_back(ref);
            chain.handlers.push_back(&ref->version->handler());
            if (const auto cap = ref->version->spec().max_in_flight; cap > 0)
                chain.caps.push_back({&instance_in_flight(name), cap, name});
        }
        chain.route = route;
        chain.plugin = &chain.answering().spec().name;
        if (l.spec.framing == framing_kind::http && chain.answering().serves_sessions()) {
            chain.sessions = true;
            chain.sessions_only = !chain.answering().answers_requests();
        }
        if (count_traffic) {
            auto& requests = request_stats_[{l.spec.name, route, names.back(), generation}];
            if (!requests)
                requests = ledger_.requests(index_, l.spec.name, route, names.back(), generation);
            chain.requests = requests;
        }
    };
    if (l.spec.routes.empty()) {
        add_chain(l.spec.chain, {});
    } else {
        table->routed = true;
        table->routes = route_table{l.spec.routes};
        for (const auto& route : l.spec.routes) add_chain(route.chain, route.label);
    }
    // The spans point into vectors that no longer grow.
    for (auto& chain : table->chains) chain.run = handler_chain{chain.handlers};
    return table;
}

asio::awaitable<void> shard::sweep() {
    using phase = client_connection::phase_kind;
    const auto as_tuple = asio::as_tuple(asio::deferred);
    while (!shutting_down_ || !connections_.empty()) {
        sweeper_.expires_after(sweep_interval_);
        co_await sweeper_.async_wait(as_tuple);
        report_repeated_warnings();
        for (connection_link& link : connections_) {
            client_connection& c = *link.self;
            if (c.aborted) continue;
            const auto& limits = c.limits();
            const auto age = c.phase_age.age(c.phase_sequence, sweep_interval_);
            switch (c.phase) {
                case phase::handling:
                    if (age < limits.request_timeout) break;
                    if (c.via->warnings[warning_kind::request_timeout].first())
                        log::warn(
                            "plugin " + *c.active->plugin + ": request from " + c.peer +
                                " on listener " + c.via->spec.name +
                                " exceeded request_timeout_ms (" +
                                std::to_string(limits.request_timeout.count()) + "): cancelled",
                            {log::tag("plugin", *c.active->plugin),
                             log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
                    c.abort(failure::timeout);
                    break;
                case phase::writing:
                    if (age < limits.write_timeout) break;
                    if (c.via->warnings[warning_kind::write_timeout].first())
                        log::warn(
                            "listener " + c.via->spec.name + ": " + c.peer +
                                " did not read its replies for write_timeout_ms (" +
                                std::to_string(limits.write_timeout.count()) + "): closed",
                            {log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
                    c.abort(failure::write_timeout);
                    if (auto* counted = c.counted)
                        ++counted->errors[static_cast<std::size_t>(request_error::write_timeout)];
                    break;
                case phase::waiting:
                case phase::receiving:
                    if (c.session) {  // pings, the idle timeout, a frame begun and not ended
                        c.session->sweep(age);
                        break;
                    }
                    // No complete request in time; a trickle of bytes does not count.
                    if (c.phase == phase::receiving && age >= limits.request_timeout) {
                        c.too_slow();
                    } else if (age >= limits.idle_timeout) {
                        if (auto* counted = c.via->traffic) ++counted->idle_timeouts;
                        c.close_when_idle();
                    } else if (age > std::chrono::milliseconds{0} && c.in_read_wait && !c.parked &&
                               !c.streaming) {
                        c.park();  // quiet for a sweep: give its coroutine back
                    }
                    break;
                case phase::lingering:
                    if (age >= std::min(limits.idle_timeout, std::chrono::milliseconds{2000}))
                        c.close_when_idle();
                    break;
                case phase::handshaking:
                    // Counted as failed by the handshake's own end.
                    if (age >= limits.request_timeout) c.close_when_idle();
                    break;
            }
        }
    }
    report_repeated_warnings(true);  // what is counted is not lost at a stop
}

void shard::abort_requests_on(const plugin_version* version) {
    for (connection_link& link : connections_) {
        client_connection& c = *link.self;
        if (c.active && c.active->runs(version)) c.abort(failure::drain_timeout);
        // A WebSocket session holds only its final plugin's version (its filters ran once,
        // for the upgrade): a filter's reload does not end it.
        if (c.session && c.session->runs(version)) c.session->drain_timeout();
    }
}

namespace {

// An allocator Asio does not recognise as its default (std::allocator<void> means "none",
// and then an operation comes from the per-thread recycling cache): operations bound to it
// are plain heap allocations, freed to the heap.
template <class T>
struct plain_heap {
    using value_type = T;
    plain_heap() noexcept = default;
    template <class U>
    plain_heap(const plain_heap<U>&) noexcept {}
    T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
    template <class U>
    bool operator==(const plain_heap<U>&) const noexcept {
        return true;
    }
};

}  // namespace

asio::awaitable<void> shard::accept_loop(std::shared_ptr<shard_listener> r) {
    const auto as_tuple = asio::as_tuple(asio::deferred);
    for (;;) {
        // The accept operation (with the socket it makes, about 350 bytes) is allocated
        // from the heap, not from Asio's per-thread recycling cache: a block freed into
        // that cache is handed to the next operation whatever its size, and the next one
        // is the new connection's readability wait, which keeps it for as long as the
        // client is idle.
        auto [ec, socket] =
            co_await asio::async_initiate<decltype(as_tuple),
                                          void(boost::system::error_code, transport::socket_type)>(
                [this, &r](auto handler) {
                    r->acceptor.async_accept(
                        io_.get_executor(),
                        asio::bind_allocator(plain_heap<void>{}, std::move(handler)));
                },
                as_tuple);
        if (ec == asio::error::operation_aborted || !r->acceptor.is_open()) co_return;
        if (ec) {
            // Out of descriptors (EMFILE/ENFILE) or memory. The connection stays in the
            // backlog and the socket stays readable, so retrying at once would spin; pause,
            // and say so once per interval rather than a hundred times a second.
            if (should_warn_accept_failure()) {
                log::warn("listener " + r->spec.name + ": cannot accept: " + ec.message() +
                          " (retrying every 100 ms; raise the open file limit or lower "
                          "max_connections)");
            }
            asio::steady_timer pause{io_, std::chrono::milliseconds{100}};
            co_await pause.async_wait(as_tuple);
            continue;
        }
        // Each shard takes its share of the listener's limit, rounded up: counting per
        // shard keeps a shared counter off the accept path.
        const auto share = (r->spec.limits.max_connections + shards_ - 1) / shards_;
        // At the limit an idle connection makes room, as nginx reuses keep-alive ones: an
        // idle flood must not lock every new client out until idle_timeout_ms. The one
        // closed may still count until its coroutine ends; the limit is overshot by that
        // few for that long.
        const bool full = r->open_connections >= share && !reclaim_idle(*r);
        if (full) {
            ++r->refused;
            r->warnings[warning_kind::connection_limit].count();
        }
        if (auto* counted = r->traffic) ++(full ? counted->refused : counted->accepted);
        if (full || r->closing) {
            // Close at once, so the client learns immediately instead of waiting in the
            // backlog.
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        transport wire{std::move(socket)};
        if (r->tls && !wire.use_tls(r->tls->native())) {
            if (auto* counted = r->traffic) ++counted->tls_failed;
            continue;  // out of memory: closed
        }
        (new client_connection{*this, r, std::move(wire)})->start();  // deletes itself at the end
    }
}

void shard::close_listener(shard_listener& r) {
    r.closing = true;
    r.table = nullptr;  // its versions are retired and may go: nothing may start on them
    boost::system::error_code ignored;
    r.acceptor.close(ignored);
    for (connection_link& link : connections_) {
        if (link.self->via.get() == &r) link.self->close_when_idle();
    }
}

shard_snapshot shard::snapshot() const {
    shard_snapshot s;
    s.topic_publishes = topic_counts_->publishes;
    for (const auto& [name, stats] : listener_stats_) {
        auto r = listeners_.find(name);
        s.listeners.push_back(
            {name, *stats, r != listeners_.end() ? r->second->open_connections : 0});
    }
    for (const auto& [key, stats] : request_stats_) {
        s.requests.push_back(
            {std::get<0>(key), std::get<1>(key), std::get<2>(key), *stats, std::get<3>(key)});
    }
    s.canary = canary_snapshot().canary;
    for (const auto* refs : {&plugins_, &canary_plugins_}) {
        for (const auto& [name, p] : *refs)
            s.versions.push_back({name, p->version->generation(), p->in_flight, false});
    }
    for (const auto& p : retiring_) {
        s.versions.push_back(
            {p->version->spec().name, p->version->generation(), p->in_flight, true});
    }
    return s;
}

shard_snapshot shard::canary_snapshot() const {
    shard_snapshot s;
    for (const auto& [key, stats] : canary_stats_) {
        if (stats->canary != 0) s.canary.push_back({key.first, *stats});
    }
    return s;
}

void shard::begin_shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    // No heartbeat from here on: the io_context must be able to run out of work.
    if (stalls_) stalls_->stop_watching(index_);
    heartbeat_.cancel();
    if (connections_.empty()) sweeper_.cancel();
    for (auto& [name, r] : listeners_) close_listener(*r);
    listeners_.clear();
    work_.reset();
}

}  // namespace plugd
