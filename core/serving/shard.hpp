// shard: one worker thread with its own io_context, acceptors, connections and routes.
//
// Everything in a shard is touched only by its own thread (the control thread hands work
// over with asio::post), so the request path needs no lock and no shared atomic write.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "config.hpp"
#include "faults/stall_monitor.hpp"
#include "plugins/plugin_version.hpp"
#include "serving/buffer_pool.hpp"
#include "serving/canary_split.hpp"
#include "serving/dispatch_table.hpp"
#include "serving/repeated_warning.hpp"
#include "serving/traffic_ledger.hpp"
#include "serving/traffic_stats.hpp"
#include "tls/tls_context.hpp"
#include "transport/next_bytes_wait.hpp"

namespace plugd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct client_connection;

/// How a connection sits in one of its shard's intrusive lists (all of them, and its listener's
/// idle ones): linking and unlinking are a few pointer writes, no allocation, and it unlinks
/// itself when the connection is destroyed.
struct connection_link
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
    client_connection* self = nullptr;
};
using connection_list =
    boost::intrusive::list<connection_link, boost::intrusive::constant_time_size<false>>;

/// A shard's part of one listener: its acceptor and where its requests go. Connections
/// hold it by shared_ptr, so it outlives a listener removed by a reload until its last
/// connection has closed.
struct shard_listener {
    shard_listener(asio::io_context& io, listener_spec s) : spec{std::move(s)}, acceptor{io} {}
    listener_spec spec;  ///< `name` never changes; framing/plugin may, on reload
    tcp::acceptor acceptor;
    /// TLS: the current generation's context, which new connections handshake with (open
    /// ones keep theirs). Null: plaintext.
    std::shared_ptr<const tls_context> tls;
    /// The current generation's chains (and routes): read at the start of each request,
    /// which pins it. Null once the listener closes.
    dispatch_table* table = nullptr;
    /// While a canary runs: the canary generation's, which takes its share of new requests
    /// (shard::table_for). Null otherwise.
    dispatch_table* canary_table = nullptr;
    std::size_t open_connections = 0;  ///< on this shard
    bool closing = false;              ///< no new requests: finish the current one, then close
    // At max_connections since the sweeper last reported (warning_kind::connection_limit):
    std::size_t reclaimed = 0;  ///< idle connections closed to admit new ones
    std::size_t refused = 0;    ///< new connections closed because none was idle
    /// Per-request and per-connection warnings of this listener on this shard: the first
    /// logged at once, repeats counted and summarised by the sweeper every 5 s at most.
    repeated_warnings warnings;
    /// This shard's connections of this listener that wait for a new request, longest idle
    /// first: at max_connections the front one makes room for a new client in O(1).
    connection_list idle;
    // Where this shard counts for /metrics; null when nothing reads them (no admin endpoint).
    // Requests count in their chain's request_stats.
    listener_stats* traffic = nullptr;
};

/// A canary that a shard_update starts: its versions take `split.percent` of new requests
/// next to the generation serving (shard_update::plugins), and each side counts, for every
/// instance it changed, what the judge compares.
struct canary_update {
    std::uint64_t generation = 0;          ///< the canary's
    std::uint64_t serving_generation = 0;  ///< the generation serving the rest
    std::map<std::string, std::shared_ptr<plugin_version>> plugins;  ///< its complete set
    std::vector<std::string> judged;  ///< the instances whose version it changed
    canary_split split;
};

/// What one shard changes for one reload (or for start-up, where everything is new).
/// Built on the control thread once every part is ready; applied on the shard's thread
/// in one step, between two events, so no request sees half of it.
struct shard_update {
    std::map<std::string, std::shared_ptr<plugin_version>> plugins;  ///< the complete new set
    std::vector<std::shared_ptr<shard_listener>> added;  ///< bound on this shard's io_context
    std::vector<listener_spec> kept;   ///< kept sockets; framing/plugin may differ
    std::vector<std::string> removed;  ///< listener names
    bool count_traffic = false;        ///< keep traffic_stats (for /metrics)
    /// Every TLS listener's context for this generation, by listener name (built anew at
    /// each reload: the files may have been replaced). None: the listeners keep theirs (a
    /// canary's start and end change plugin versions only).
    std::optional<std::map<std::string, std::shared_ptr<const tls_context>>> tls;
    /// A canary starts; none: the update ends any canary (promoted: its versions are in
    /// `plugins`; rolled back: they are not).
    std::optional<canary_update> canary;
};

class shard {
  public:
    /// `on_release` runs on this shard's thread each time it drops its reference to a
    /// retired plugin version; the server uses it to unload versions on its own thread.
    /// `shards` is how many there are: each takes its share of max_connections.
    /// Routes arrive with the first apply().
    shard(unsigned index, unsigned shards, traffic_ledger& ledger,
          std::function<void()> on_release);
    ~shard();

    unsigned index() const noexcept { return index_; }
    asio::io_context& io() noexcept { return io_; }

    /// Starts the worker thread, which beats for `stalls` while it serves. `on_exit` runs
    /// on that thread once the io_context has no more work (after begin_shutdown and the
    /// last connection).
    void start(stall_monitor& stalls, std::function<void()> on_exit);
    void join();

    // The members below run on the shard's own thread (reach them with asio::post).

    void apply(shard_update update);
    /// Ends the requests still running on `version` (a retired one that would not drain
    /// in time): each client gets "ERR reload drain timeout" (503) and the connection closes.
    void abort_requests_on(const plugin_version* version);
    /// Stops accepting everywhere, closes idle connections, lets busy ones finish their
    /// request, and lets the io_context run out of work.
    void begin_shutdown();
    /// Shutting down soon (shutdown_delay_ms): HTTP replies say `Connection: close`, so
    /// keep-alive clients leave between requests while the listeners still accept.
    void begin_drain() noexcept { draining_ = true; }
    bool draining() const noexcept { return draining_; }
    /// A copy of this shard's counters and gauges.
    shard_snapshot snapshot() const;
    /// A copy of this shard's canary figures only (snapshot().canary), for the judge.
    shard_snapshot canary_snapshot() const;

    // Used by connections.
    /// The table a new request on `l` starts on (a raw connection, a WebSocket session's
    /// upgrade request): the listener's, or while a canary runs, for the canary's share,
    /// the canary's. `peer` and `http` are what a sticky split goes by. Null once `l` closes.
    dispatch_table* table_for(shard_listener& l, std::string_view peer,
                              const http_request_view* http) noexcept {
        if (!l.canary_table) return l.table;
        return split_.takes(peer, http) ? l.canary_table : l.table;
    }
    /// Counts a request into `table` and every link of `chain`. When a link is at its
    /// max_in_flight, counts nothing and returns that link's cap: the request is refused.
    const in_flight_cap* request_begins(dispatch_table& table, const chain_slot& chain) noexcept;
    /// Counts a request out of what request_begins counted it into; drops the references
    /// to retired versions, and a retired table, when their last request ends.
    void request_done(dispatch_table& table, const chain_slot& chain) noexcept;
    /// A WebSocket session pins `table` and its final plugin `link` (not its filters, nor a
    /// max_in_flight share) from its upgrade to its end; session_ends releases them.
    void session_begins(dispatch_table& table, plugin_ref& link) noexcept;
    void session_ends(dispatch_table& table, plugin_ref& link) noexcept;
    void connection_opened(client_connection& c) noexcept;
    void connection_closed(client_connection& c) noexcept;
    /// `c` starts a request while replies it finished before it are still unwritten: if
    /// the handler waits on a facility, the thread's suspend hook writes them first (see
    /// host/suspension.hpp). The connection leaves the list by unlinking its `idle` link.
    void hold_unsent(client_connection& c) noexcept;
    /// Where the topics count the messages published on this shard's thread (ledger
    /// memory; written by this thread only).
    std::uint64_t* topic_publishes() noexcept { return &topic_counts_->publishes; }
    /// Spare request buffers and reply strings of this shard's connections.
    buffer_pool& buffers() noexcept { return buffers_; }
    /// Where connections read what has arrived before keeping what they need of it. Each
    /// use ends before the next suspension, so one buffer serves every connection.
    std::span<char> scratch() noexcept { return {scratch_.get(), scratch_bytes}; }
    /// The event loop's reactor, for waits for a connection's next bytes.
    const readiness_source& readiness() const noexcept { return readiness_; }

  private:
    /// The worker thread's suspend hook: writes what every connection in unsent_ has
    /// finished, as far as the sockets take it without waiting.
    static void write_unsent(void* self) noexcept;
    void retire(std::unique_ptr<plugin_ref> p);
    void release(plugin_ref& p) noexcept;
    /// Counts a request out of `p`; drops the reference to a retired version when idle.
    void link_done(plugin_ref& p) noexcept;
    /// Counts a request or session out of `table`; frees a replaced table when idle.
    void table_done(dispatch_table& table) noexcept;
    /// The table of `l` for the plugins current now: the serving generation's, or with
    /// `canary` the canary's.
    std::unique_ptr<dispatch_table> make_table(const shard_listener& l, bool count_traffic,
                                               bool canary);
    /// Resets this shard's records of both sides of every instance `c` judges, for `c`.
    void reset_canary_stats(const canary_update& c);
    /// Replaces `tables` entry `name` by `table`; the old one goes once its last request has.
    void swap_table(std::map<std::string, std::unique_ptr<dispatch_table>>& tables,
                    const std::string& name, std::unique_ptr<dispatch_table> table);
    asio::awaitable<void> accept_loop(std::shared_ptr<shard_listener> r);
    asio::awaitable<void> sweep();
    asio::awaitable<void> heartbeat();
    /// The summary lines due now (all of them, and every kind back to logging its next
    /// occurrence in full, when `flush`: a reload, the end).
    void report_repeated_warnings(bool flush = false);
    /// At `r`'s connection limit: closes its longest-idle connection to make room for a
    /// new one. False when none is waiting for a new request.
    bool reclaim_idle(shard_listener& r);
    void close_listener(shard_listener& r);

    unsigned index_;
    unsigned shards_;
    std::chrono::milliseconds sweep_interval_{1000};
    bool sweeping_ = false;
    std::function<void()> on_release_;
    bool shutting_down_ = false;
    bool draining_ = false;
    connection_list connections_;
    connection_list unsent_;  ///< see hold_unsent
    // Never erased: a counter must not go back to zero while the process lives. They live
    // in the ledger (see traffic_ledger), found here by name; routes point at them.
    traffic_ledger& ledger_;
    std::map<std::string, listener_stats*> listener_stats_;
    topic_stats* topic_counts_;
    /// By listener, route label, final instance and (while a canary runs) side generation.
    std::map<std::tuple<std::string, std::string, std::string, std::string>, request_stats*>
        request_stats_;
    // Member order is destruction order, reversed: routes and then the io_context (with
    // any coroutine frames it still holds) go before the plugin versions they may call.
    std::map<std::string, std::unique_ptr<plugin_ref>> plugins_;  ///< by instance name
    /// While a canary runs: its versions that differ from plugins_', by instance name.
    std::map<std::string, std::unique_ptr<plugin_ref>> canary_plugins_;
    std::vector<std::unique_ptr<plugin_ref>> retiring_;
    /// By listener name: the table each listener's requests start on now.
    std::map<std::string, std::unique_ptr<dispatch_table>> tables_;
    /// By listener name, while a canary runs: the canary's tables.
    std::map<std::string, std::unique_ptr<dispatch_table>> canary_tables_;
    /// The canary running (its update without the plugins), if any.
    std::optional<canary_update> canary_;
    canary_split split_;  ///< the running canary's; read by table_for
    /// By (instance, canary side): this shard's canary figures, in the ledger, reused by
    /// every canary of the instance.
    std::map<std::pair<std::string, bool>, canary_stats*> canary_stats_;
    std::vector<std::unique_ptr<dispatch_table>> retired_tables_;  ///< still pinned
    // Outlive the io_context: a connection gives its buffers back as it is destroyed.
    buffer_pool buffers_;
    static constexpr std::size_t scratch_bytes = 64 * 1024;
    std::unique_ptr<char[]> scratch_{new char[scratch_bytes]};
    asio::io_context io_{1};  // run by one thread only
    readiness_source readiness_{io_};
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
    std::map<std::string, std::shared_ptr<shard_listener>> listeners_;
    asio::steady_timer sweeper_{io_};
    stall_monitor* stalls_ = nullptr;
    asio::steady_timer heartbeat_{io_};
};

}  // namespace plugd
