// connection: the life of a request, from bytes read to reply written, for every framing:
// read what has arrived → the codec decodes → the plugin handles → the codec encodes →
// write. The framings differ only in their codecs (framing/).
#include "serving/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <memory>
#include <span>
#include <utility>

#include <plugd/context.hpp>
#include <plugd/handler.hpp>

#include "faults/running_code.hpp"
#include "framing/framings.hpp"
#include "log.hpp"
#include "routing/request_path.hpp"
#include "serving/coroutine_launch.hpp"
#include "serving/raw_stream.hpp"
#include "serving/websocket_session.hpp"

namespace plugd {
namespace {

constexpr auto as_tuple = asio::as_tuple(asio::deferred);

// A request starts on `chain` of `table`, the listener's dispatch current now, so a reload
// swaps the whole composition between requests, also on connections that stay open. Null
// when it may run; else the cap of the instance at its max_in_flight (nothing counted).
const in_flight_cap* begin_request(client_connection& c, dispatch_table& table,
                                   const chain_slot& chain) noexcept {
    if (const in_flight_cap* full = c.owner.request_begins(table, chain)) return full;
    c.active = &chain;
    c.pinned = &table;
    c.begin_phase(client_connection::phase_kind::handling);
    // What a stall or crash report names; alive while the request runs.
    const plugin_version& answering = chain.answering();
    this_thread_runs() = {answering.spec().name.c_str(), answering.generation(),
                          c.via->spec.name.c_str(), c.peer.c_str()};
    return nullptr;
}

// The handler threw `error`: logs it with the plugin's name and returns how it failed.
// Only the first of a kind on this listener and thread is logged at once; the shard's
// sweeper counts the rest into a line every 5 s at most (repeated_warning).
const request_failure* request_failed(const client_connection& c, const chain_slot& chain,
                                      std::exception_ptr error) {
    const std::string& plugin = *chain.plugin;
    if (c.aborted) return c.aborted;  // the throw is the cancellation we caused
    try {
        std::rethrow_exception(error);
    } catch (const busy& e) {
        if (!c.via->warnings[warning_kind::busy].first()) return &failure::busy;
        log::warn(std::string{e.what()} + " (" + c.peer + " on listener " + c.via->spec.name +
                      " got ERR busy; raise /offload_queue or /offload_threads if this persists)",
                  {log::tag("plugin", plugin), log::tag("listener", c.via->spec.name),
                   log::tag("peer", c.peer)});
        return &failure::busy;
    } catch (const std::exception& e) {
        if (!c.via->warnings[warning_kind::handler_failed].first()) return &failure::exception;
        log::error("plugin " + plugin + " failed a request from " + c.peer + " on listener " +
                       c.via->spec.name + ": " + e.what(),
                   {log::tag("plugin", plugin), log::tag("listener", c.via->spec.name),
                    log::tag("peer", c.peer)});
    } catch (...) {
        if (!c.via->warnings[warning_kind::handler_failed].first()) return &failure::exception;
        log::error("plugin " + plugin + " threw a non-standard exception for " + c.peer,
                   {log::tag("plugin", plugin), log::tag("listener", c.via->spec.name),
                    log::tag("peer", c.peer)});
    }
    return &failure::exception;
}

// A request ends: releases its version. True when the request was aborted, whose
// cancellation the caller must then clear so the error reply can still be written.
bool end_request(client_connection& c) noexcept {
    c.owner.request_done(*std::exchange(c.pinned, nullptr), *std::exchange(c.active, nullptr));
    this_thread_runs() = {};
    return c.aborted != nullptr;
}

// Whether a request (or session) that ran its chain and ended with `failed` (null: the
// chain's reply, of HTTP status `status`) counts as an error of its side of a canary: what
// the version did wrong (threw, outlived request_timeout_ms, answered 5xx), not what the
// core or the client did to it (a full offload queue, a reload's drain, a slow reader).
bool judged_error(const request_failure* failed, int status) noexcept {
    if (failed)
        return failed->kind == request_error::exception || failed->kind == request_error::timeout;
    return status >= 500;
}

// A request refused because an instance of its chain is at its max_in_flight: counted by
// the caller as busy, logged as repeated warnings are (the first at once, the rest summed).
const request_failure* at_capacity(const client_connection& c, const in_flight_cap& cap) {
    if (c.via->warnings[warning_kind::at_capacity].first())
        log::warn("plugin " + cap.instance + " is at its max_in_flight (" +
                      std::to_string(cap.limit) + " requests at once): " + c.peer +
                      " on listener " + c.via->spec.name + " got 503 / ERR busy; raise /plugins/" +
                      cap.instance + "/max_in_flight if the plugin can take more",
                  {log::tag("plugin", cap.instance), log::tag("listener", c.via->spec.name),
                   log::tag("peer", c.peer)});
    return &failure::busy;
}

// After refusing a request, the client may still be sending it. Closing a socket with
// unread input sends a reset, which can destroy our error reply before the client reads it;
// so, as nginx's lingering close does, stop sending and discard input for a bounded time
// (the sweeper ends it) and amount. Discarded bytes may share the scratch buffer with
// every other lingering connection: nobody reads them.
asio::awaitable<void> linger(client_connection& c) {
    c.closing = true;
    c.begin_phase(client_connection::phase_kind::lingering);
    c.wire.shutdown_send();
    const auto scratch = c.owner.scratch();
    std::size_t discarded = 0;
    while (discarded < (std::size_t{1} << 24)) {
        auto [ec, n] = co_await c.wire.async_discard(scratch, as_tuple);
        if (ec) co_return;
        discarded += n;
    }
}

}  // namespace

client_connection::client_connection(shard& s, std::shared_ptr<shard_listener> r, transport t)
    : owner{s},
      via{std::move(r)},
      wire{std::move(t)},
      peer{wire.peer()},
      framing{via->spec.framing} {
    in_shard.self = idle.self = this;
    owner.connection_opened(*this);
}

client_connection::~client_connection() {
    input.release(owner.buffers());
    owner.connection_closed(*this);
}

void client_connection::wait_idle() noexcept {
    idle.unlink();
    via->idle.push_back(idle);
}

void client_connection::abort(const request_failure& why) noexcept {
    aborted = &why;
    cancel.emit(asio::cancellation_type::terminal);
}

void client_connection::park() noexcept {
    park_requested = true;
    wire.cancel();
}

void client_connection::write_unsent() noexcept {
    unsent_replies& u = *unsent;
    boost::system::error_code ec;  // would_block, or an error the next write meets again
    const std::size_t n = wire.write_now(asio::buffer(u.out->data() + u.sent, u.end - u.sent), ec);
    u.sent += n;
    if (auto* traffic = via->traffic) traffic->bytes_out += n;
}

void client_connection::subscriber_fell_behind(slow_subscriber_policy policy) noexcept {
    const bool close = policy == slow_subscriber_policy::close;
    if (auto* t = via->traffic)
        ++(close ? t->slow_subscribers_closed : t->slow_subscribers_unsubscribed);
    if (via->warnings[warning_kind::slow_subscriber].first()) {
        try {
            log::warn("listener " + via->spec.name + ": " + peer +
                          " fell more than max_queued_messages (" +
                          std::to_string(limits().max_queued_messages) + ") behind on a topic: " +
                          (close ? "closed" : "unsubscribed from that topic") +
                          " (slow_subscriber \"" + (close ? "close" : "unsubscribe") + "\")",
                      {log::tag("listener", via->spec.name), log::tag("peer", peer)});
        } catch (...) {
            // Out of memory for the line: the counter still says it.
        }
    }
    // A client that does not read holds the plugin in a write: end it now rather than at
    // write_timeout_ms.
    if (close && phase == phase_kind::writing && !aborted) abort(failure::slow_subscriber);
}

void client_connection::close_when_idle() noexcept {
    closing = true;
    idle.unlink();
    if (in_read_wait || phase == phase_kind::lingering) wire.cancel();
}

namespace {

// Takes a connection out of its shard's list of connections with unsent replies once its
// request has ended, before anything may throw: `unsent` points into the serving frame.
// (Not a guard in the frame: a frame destroyed with its shard's event loop outlives the
// connection, which leaves the list as it is deleted.)
void release_unsent(client_connection& c) noexcept {
    if (!c.unsent) return;
    c.idle.unlink();
    c.unsent = nullptr;
}

// One line of a listener's access log: who asked which route and plugin, and how it ended.
// `route` and `plugin` are empty for a request no plugin saw (no route matched). A route
// field only where the listener has routes; on TLS the protocol version and cipher suite.
void log_access(const client_connection& c, std::string_view route, std::string_view plugin,
                std::string_view outcome, std::size_t bytes_in, std::size_t bytes_out,
                std::chrono::steady_clock::time_point started) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    const std::string bytes_in_text = std::to_string(bytes_in);
    const std::string bytes_out_text = std::to_string(bytes_out);
    const std::string duration = std::to_string(us);
    std::array<log::field, 10> fields;
    std::size_t n = 0;
    fields[n++] = {"listener", c.via->spec.name};
    fields[n++] = {"peer", c.peer};
    if (c.via->table && c.via->table->routed) fields[n++] = {"route", route};
    fields[n++] = {"plugin", plugin};
    fields[n++] = {"outcome", outcome};
    fields[n++] = {"bytes_in", bytes_in_text};
    fields[n++] = {"bytes_out", bytes_out_text};
    fields[n++] = {"duration_us", duration};
    if (c.wire.is_tls()) {
        fields[n++] = {"tls_version", c.wire.tls_version()};
        fields[n++] = {"tls_cipher", c.wire.tls_cipher()};
    }
    log::info("access", std::span<const log::field>{fields.data(), n});
}

// Where a decoded request goes: a chain, or a status the core answers by itself (400 for
// a path that cannot be normalised, 404, 405) on a listener with routes.
struct dispatched {
    const chain_slot* chain = nullptr;
    int status = 0;            ///< no chain: what the client gets
    std::string_view message;  ///< what request::message() returns
};

// Routes `next` on `table` (a listener with routes: HTTP only). `extras` gets the route
// and the rest of the path; `fields` an Allow field for a 405.
template <codec Codec>
dispatched route_request(const dispatch_table& table, const frame& next, Codec& codec,
                         detail::request_extras& extras, std::string& fields) {
    if (!table.routed) return {&table.chains.front(), 0, next.message};
    if constexpr (requires { codec.routing(); }) {
        route_scratch& scratch = codec.routing();
        const http_request_view& http = *next.http;
        const std::size_t path_length = normalize_target(http.target, scratch.path);
        if (path_length == std::string_view::npos) return {nullptr, 400, {}};
        const std::string_view path = std::string_view{scratch.path}.substr(0, path_length);
        const std::string_view host =
            table.routes.uses_hosts()
                ? request_host(http.target, request{{}, {}, {}, &http}.header("host"), scratch.host)
                : std::string_view{};
        const auto m = table.routes.find(host, path, http.method);
        if (m.what == route_table::match::kind::method_not_allowed) {
            fields += "Allow: ";
            table.routes.append_allowed(host, path, fields);
            fields += "\r\n";
            return {nullptr, 405, {}};
        }
        if (m.what == route_table::match::kind::not_found) return {nullptr, 404, {}};
        const chain_slot& chain = table.chains[m.route];
        extras.route = chain.route;
        extras.path_rest = path.substr(m.prefix_length);
        // As on a listener without routes, where the message is the target after its '/':
        // here, after the route's prefix (with the query, decoded, when there is one).
        const std::string_view message =
            http.body.empty() ? std::string_view{scratch.path}.substr(m.prefix_length) : http.body;
        return {&chain, 0, message};
    } else {
        return {&table.chains.front(), 0, next.message};
    }
}

// What the core answers for a request no route took, and counts it as.
void answer_unrouted(client_connection& c, const dispatched& where, std::string& body) {
    listener_stats* traffic = c.via->traffic;
    switch (where.status) {
        case 400:
            body += "bad request path: a bad percent-escape, or \"..\" above the root";
            if (traffic) ++traffic->bad_requests;
            break;
        case 405:
            body += "method not allowed on this path (see Allow)";
            if (traffic) ++traffic->method_not_allowed;
            break;
        default:
            body += "no route for this host and path";
            if (traffic) ++traffic->not_found;
    }
}

// A request to a route whose plugin serves WebSocket sessions, answered by the core rather
// than by the chain: a badly asked upgrade (400, or 426 for a version other than 13), or a
// plain request to a plugin that serves sessions only (426). False: the chain takes it.
bool refuse_upgrade(const chain_slot& chain, const websocket_upgrade* upgrade,
                    http_reply_head& head, std::string& body) {
    if (upgrade && upgrade->what == websocket_upgrade::kind::valid) return false;
    if (upgrade) {
        head.status = upgrade->status;
        *head.fields += upgrade->fields;
        body += upgrade->reason;
        return true;
    }
    if (!chain.sessions_only) return false;
    head.status = 426;
    *head.fields += "Upgrade: websocket\r\n";
    body += "this route serves WebSocket sessions only: connect with a WebSocket client";
    return true;
}

// A WebSocket session after the plugin's serve_session: closes it (unless an abort, a drain
// or a timeout, ended it: 1001 went out already when it could), waits for the client's
// close, and counts and logs it. The plugin's version and the table were released already
// (session_served): what the access log names was copied out before.
asio::awaitable<void> end_session(client_connection& c, const request_failure* failed,
                                  std::string route, std::string plugin) {
    const std::unique_ptr<websocket_session> owned{c.session};
    websocket_session& s = *owned;
    if (!c.aborted)
        co_await s.finish(failed ? ws_close_code::internal_error : ws_close_code::normal,
                          failed ? "internal error" : "");
    c.session = nullptr;
    if (listener_stats* traffic = c.via->traffic) {
        ++traffic->websocket_ended;
        ++traffic->websocket_closes[websocket_close_slot(s.close_code())];
    }
    if (c.via->spec.access_log) {
        log_access(c, route, plugin, "websocket " + std::to_string(s.close_code()), s.bytes_in(),
                   s.bytes_out(), s.started());
    }
}

// The connection after a codec's protocol switch: the plugin serves it as a byte stream
// (handler::serve). It is one request from the core's point of view: it holds the version
// it started on until it ends (a reload's drain waits for it, up to
// reload_drain_timeout_ms), and its phases are timed as a request's.
asio::awaitable<void> serve_stream(client_connection& c) {
    // A reload may have removed the listener while the switch's reply was written.
    if (c.via->closing || !c.via->table) co_return;
    dispatch_table& table = *c.owner.table_for(*c.via, c.peer, nullptr);  // a canary's share
    const chain_slot& chain = table.chains.front();  // raw and upgrades: one chain of one
    request_stats* counted = chain.requests;
    const bool access = c.via->spec.access_log;
    const auto started = access || counted ? std::chrono::steady_clock::now()
                                           : std::chrono::steady_clock::time_point{};
    c.counted = counted;
    if (const in_flight_cap* full = begin_request(c, table, chain)) {
        at_capacity(c, *full);
        if (counted) ++counted->errors[static_cast<std::size_t>(request_error::busy)];
        co_return;
    }
    // Copied: end_request may free the table the chain is in, before the log line.
    const std::string plugin_name = access ? *chain.plugin : std::string{};
    const std::string route_name = access ? chain.route : std::string{};
    c.streaming = true;
    raw_stream stream{c};
    const request_failure* failed = nullptr;
    try {
        co_await chain.handlers.front()->serve(stream);
    } catch (...) {
        failed = request_failed(c, chain, std::current_exception());
    }
    // The stream's protocol is the plugin's: a failure gets no error reply, only a close.
    if (c.aborted) failed = c.aborted;
    chain.count_judged(judged_error(failed, 0));  // its length is the client's: not judged
    end_request(c);                               // may free `chain`'s table
    if (counted) {
        counted->record(std::chrono::steady_clock::now() - started);
        // The sweeper counted a write timeout already, the topics a slow subscriber.
        if (failed && failed != &failure::write_timeout && failed != &failure::slow_subscriber)
            ++counted->errors[static_cast<std::size_t>(failed->kind)];
    }
    if (access) {
        log_access(c, route_name, plugin_name,
                   failed ? (*failed->line ? failed->line : "closed") : "ok", stream.bytes_in(),
                   stream.bytes_out(), started);
    }
}

// The serving loop, the same for every framing: answers every whole request buffered,
// writes the replies in one batch, then reads what has arrived (or waits for it, or
// parks). The handler is awaited here rather than in a helper coroutine, and reading is
// inline too: a coroutine frame less per request is a visible share of a pipelined
// request's cost. True when the connection parked (it waits for bytes without a
// coroutine), false when it is to close.
constexpr unsigned batches_per_turn = 4;

/// A request was answered (by its chain, by the core, or failed: `failed`, whose text then
/// replaces what the handler wrote since `mark`): counts it and writes its access log line.
/// Returns its status. Not part of the serving coroutine, for the same reason as
/// read_arrived().
template <codec Codec>
int request_concluded(client_connection& c, const chain_slot* chain, int unrouted_status,
                      http_reply_head* head, std::string& sink, std::size_t mark,
                      const request_failure* failed, request_stats* counted,
                      std::chrono::steady_clock::time_point started, std::size_t bytes_in) {
    if (failed) {  // what the handler wrote goes; the failure's text replaces it
        sink.resize(mark);
        sink += failed->line;
        if (head) head->fields->clear();
    }
    const int status = failed   ? failed->status
                       : !chain ? unrouted_status
                       : head   ? head->status
                                : 200;
    c.counted = counted;
    if (counted) {
        counted->record(std::chrono::steady_clock::now() - started);
        if (failed) ++counted->errors[static_cast<std::size_t>(failed->kind)];
    }
    if (c.via->spec.access_log) {
        const std::string outcome = Codec::replies_have_status ? std::to_string(status)
                                    : failed                   ? failed->line
                                                               : "ok";
        log_access(c, chain ? std::string_view{chain->route} : std::string_view{},
                   chain ? std::string_view{*chain->plugin} : std::string_view{}, outcome, bytes_in,
                   sink.size() - mark, started);
    }
    return status;
}

/// A chain's awaitable, made outside the serving coroutine: the request a call takes by value
/// would otherwise be a temporary of the co_await (and the request itself a local), both
/// kept in the coroutine's frame while the handler runs. The plugin's coroutine keeps its
/// own copy.
template <class Chain>
task<void> chain_started(const Chain& chain, const client_connection& c, const dispatched& where,
                         const frame& next, const detail::request_extras& extras, reply& answer) {
    return chain(request{where.message, c.peer, c.via->spec.name, next.http, &extras}, answer);
}

/// What replies_written_now() came to.
enum class write_outcome : std::uint8_t {
    written,  ///< every reply went
    wait,     ///< the socket is full: the rest, from unsent.sent on, is to be awaited
    failed,   ///< the connection broke
};

/// Writes the replies in `out` from unsent.sent on, as far as the socket takes them now
/// (unsent.sent then says how far), and counts the bytes. Not part of the serving
/// coroutine, for the same reason as read_arrived().
write_outcome replies_written_now(client_connection& c, const std::string& out,
                                  unsent_replies& unsent, listener_stats* traffic) noexcept {
    c.begin_phase(client_connection::phase_kind::writing);
    boost::system::error_code ec;
    std::size_t n = 0;
    const bool wait = c.wire.write_now_or_wait(
        std::string_view{out.data() + unsent.sent, out.size() - unsent.sent}, n, ec);
    unsent.sent += n;
    if (traffic) traffic->bytes_out += n;
    if (wait) return write_outcome::wait;
    return ec ? write_outcome::failed : write_outcome::written;
}

/// The replies in `out` from `from` on, waiting for the socket (replies_written_now() found
/// it full): true once written. A coroutine of its own, so that its operation's state is in
/// the serving coroutine's frame only while a client is slow to read.
asio::awaitable<bool> replies_rest_written(client_connection& c, const std::string& out,
                                           std::size_t from, listener_stats* traffic) {
    auto [ec, n] = co_await c.wire.async_write(
        asio::const_buffer{out.data() + from, out.size() - from}, as_tuple);
    if (traffic) traffic->bytes_out += n;
    co_return !ec;
}

/// An upgrade was answered: makes the connection's WebSocket session, the 101 and any replies
/// before it (`replies`) in its cork. Throws std::bad_alloc, the session's pins released.
void session_made(client_connection& c, dispatch_table& table, const chain_slot& chain,
                  std::string_view path_rest, std::string_view replies) {
    try {
        c.session = new websocket_session{c, table, chain, path_rest};
        c.session->hold_upgrade_reply(replies);
    } catch (...) {
        delete std::exchange(c.session, nullptr);
        c.owner.session_ends(table, *chain.links.back());
        throw;
    }
}

/// What read_arrived() came to.
enum class read_outcome : std::uint8_t {
    bytes,    ///< appended to c.input (or there was no room for more: decode first)
    nothing,  ///< nothing has arrived: wait for readability
    eof,      ///< the client's end of input (after any bytes appended)
    failed,   ///< the connection broke
};

/// Serving's read step: what has arrived, into the shard's scratch buffer and kept in
/// c.input, up to the codec's limit, never waiting. Not part of the serving coroutine, so
/// that its locals take no room in the coroutine's frame (which a waiting connection
/// keeps). Throws std::bad_alloc.
template <codec Codec>
read_outcome read_arrived(client_connection& c, const limits& limits) {
    const auto scratch = c.owner.scratch();
    const std::size_t most = Codec::max_buffered(limits.max_request_bytes);
    std::size_t allowance = most > c.input.size() ? most - c.input.size() : 0;
    bool got = false;
    while (allowance > 0) {
        boost::system::error_code ec;
        const std::size_t asked = std::min(scratch.size(), allowance);
        const std::size_t n = c.wire.read_now(scratch.first(asked), ec);
        if (ec == asio::error::would_block)
            return got ? read_outcome::bytes : read_outcome::nothing;
        if (ec == asio::error::eof) return read_outcome::eof;
        if (ec) return read_outcome::failed;
        // A request's first bytes: from now on it may have to arrive whole in time.
        if (Codec::times_partial_requests && c.input.empty())
            c.begin_phase(client_connection::phase_kind::receiving);
        if (auto* t = c.via->traffic) t->bytes_in += n;
        c.input.append(c.owner.buffers(), scratch.data(), n);
        got = true;
        allowance -= n;
        if (n < asked) break;  // all that has arrived: spare the read that would say so
    }
    return read_outcome::bytes;
}

template <codec Codec>
asio::awaitable<bool> serve(client_connection& c) {
    using phase = client_connection::phase_kind;
    buffer_pool& pool = c.owner.buffers();
    Codec codec;
    std::string out;              // replies to write, in order
    unsent_replies unsent{&out};  // of `out`: what an early write has sent
    bool eof = false;
    // A WebSocket upgrade the filters passed: its chain, its table (both pinned by
    // session_begins) and the path after the route's prefix.
    const chain_slot* session_chain = nullptr;
    dispatch_table* session_table = nullptr;
    std::string_view session_rest;
    unsigned awake = 0;  // batches since the last wait (see batches_per_turn)
    for (;;) {
        const auto& limits = c.limits();
        frame stop;  // refused or switch_protocol: what ended the batch
        bool answered = false;
        bool more = false;  // whole requests still buffered: answer them before reading
        // A closing route (shutdown, listener removed by a reload) starts no new request:
        // its plugin version may already be gone once the current request has finished.
        while (!c.via->closing && !c.closing && (!c.input.empty() || Codec::decodes_before_input)) {
            const frame next = codec.decode(c.input.view(), limits.max_request_bytes, eof);
            if (next.what == frame::kind::incomplete) {
                codec.answer_early(out);
                break;
            }
            if (next.what != frame::kind::request) {
                stop = next;
                c.input.consume(next.consumed);  // a switch's own bytes (an upgrade request)
                break;
            }
            if (out.empty()) out = pool.take_string();  // a reply string that has grown before
            std::string& sink = codec.reply_buffer(out);
            http_reply_head* const head = codec.reply_head();
            // The composition current now (while a canary runs, one of its two sides).
            dispatch_table& table = *c.owner.table_for(*c.via, c.peer, next.http);
            detail::request_extras extras;
            extras.client_subject = c.wire.client_subject();
            const dispatched where =
                route_request(table, next, codec, extras, head ? *head->fields : sink);
            const chain_slot* const chain = where.chain;
            // An upgrade to a route whose plugin serves WebSocket sessions: its filters run
            // (one may refuse it), then the core answers 101 and the session begins; the
            // core answers a bad upgrade, or a plain request to a sessions-only plugin.
            const websocket_upgrade* upgrade = nullptr;
            bool core_answered = false;
            if constexpr (requires { codec.websocket(); }) {
                if (chain && chain->sessions) {
                    upgrade = codec.websocket();
                    core_answered = refuse_upgrade(*chain, upgrade, *head, sink);
                    if (core_answered) upgrade = nullptr;
                }
            }
            // The access log's and the metrics' clock reads and the copied name cost nothing
            // when they are off.
            const bool access = c.via->spec.access_log;
            request_stats* counted = chain ? chain->requests : nullptr;
            const bool judged = chain && !chain->judged.empty();
            const auto started = access || counted || judged
                                     ? std::chrono::steady_clock::now()
                                     : std::chrono::steady_clock::time_point{};
            const std::size_t mark = sink.size();
            const request_failure* failed = nullptr;
            bool ran = false;  // the chain ran: the request is to end (end_request)
            if (!chain) {
                answer_unrouted(c, where, sink);
            } else if (core_answered) {
                // (head->status says what)
            } else if (const in_flight_cap* full = begin_request(c, table, *chain)) {
                failed = at_capacity(c, *full);
            } else {
                if (chain->links.size() > 1) {  // filters may attach values for later links
                    if (!c.attributes) c.attributes = std::make_unique<attribute_store>();
                    c.attributes->clear();
                    extras.attributes = c.attributes.get();
                }
                // Replies before this request wait for the batch's write; should this
                // handler wait first, they go out then (see host/suspension.hpp).
                if (out.size() > unsent.sent) {
                    unsent.end = out.size();
                    c.unsent = &unsent;
                    c.owner.hold_unsent(c);
                }
                try {
                    reply answer{sink, head};
                    if (upgrade) {
                        const upgrade_chain gate{chain->handlers};
                        co_await chain_started(gate, c, where, next, extras, answer);
                        if (gate.reached()) {
                            // Pinned before the request's own pins go: the table and the
                            // final version must outlive the 101's write.
                            c.owner.session_begins(table, *chain->links.back());
                            session_chain = chain;
                            session_table = &table;
                            session_rest = extras.path_rest;
                            head->status = 101;
                        }
                    } else {
                        co_await chain_started(chain->run, c, where, next, extras, answer);
                    }
                    release_unsent(c);
                } catch (...) {
                    release_unsent(c);  // first: logging the failure may throw
                    failed = request_failed(c, *chain, std::current_exception());
                }
                if (c.aborted) failed = c.aborted;
                // Before end_request, which may free the table the chain is in. A session's
                // upgrade is not judged: the session is, when it ends (serve_session).
                if (judged && !session_chain) {
                    const int status = failed ? failed->status : head ? head->status : 200;
                    chain->count_judged(std::chrono::steady_clock::now() - started,
                                        judged_error(failed, status));
                }
                ran = true;
            }
            const int status = request_concluded<Codec>(c, chain, where.status, head, sink, mark,
                                                        failed, counted, started, next.consumed);
            // After the log line, which names the chain: end_request may free its table.
            if (ran && end_request(c)) co_await asio::this_coro::reset_cancellation_state();
            c.input.consume(next.consumed);
            answered = true;
            // Closing (a stop, or its listener removed by a reload) or about to (a drain):
            // the codec says so if its protocol can, so a keep-alive client leaves cleanly
            // between requests instead of meeting a closed socket.
            const bool closing = c.aborted || c.closing || c.via->closing || c.owner.draining();
            if (session_chain) {
                if (failed) {  // the filters passed it on, then failed: no session
                    c.owner.session_ends(*session_table, *session_chain->links.back());
                    session_chain = nullptr;
                } else {
                    append_switching_protocols(out, upgrade->key, *head->fields);
                    break;
                }
            }
            if (!codec.encode_reply(out, status, closing)) c.closing = true;
            if (c.aborted || c.closing) break;
            // Pipelined requests from a client that does not read would otherwise grow
            // `out` without bound: stop at the cap and write first.
            if (out.size() >= limits.max_output_bytes) {
                more = true;
                break;
            }
        }
        const bool refused = stop.what == frame::kind::refused;
        c.input.release_if_empty(pool);  // nothing left to handle: hold no buffer
        listener_stats* traffic = c.via->traffic;
        if (refused) {
            if (traffic) ++traffic->bad_requests;
            c.closing = true;  // nothing may evict it before the client has read why
            Codec::encode_refusal(out, stop);
        }
        if (session_chain) {
            // The session runs in a coroutine of its own once this one has ended (resume()).
            // The 101 (and any replies pipelined before it) waits in the session's cork for
            // the plugin's first wait: what serve_session does before it (subscribing) is
            // in place when the client learns that the session is open.
            c.streaming = true;  // its reads are the session's: no parking
            session_made(c, *session_table, *session_chain, session_rest,
                         std::string_view{out}.substr(unsent.sent));
            co_return false;
        }
        if (out.size() > unsent.sent) {
            // What the socket takes at once goes without suspending (a batch answered
            // without waiting costs no operation of Asio's); only the rest waits.
            const write_outcome wrote = replies_written_now(c, out, unsent, traffic);
            if (wrote == write_outcome::failed) co_return false;
            if (wrote == write_outcome::wait) {
                if (!co_await replies_rest_written(c, out, unsent.sent, traffic)) co_return false;
                awake = 0;
            }
        }
        out.clear();
        unsent.sent = 0;
        if (refused) {
            co_await linger(c);
            co_return false;
        }
        if (stop.what == frame::kind::switch_protocol) {
            pool.give_string(std::move(out));
            co_await serve_stream(c);
            co_return false;
        }
        if (c.via->closing || c.closing || c.aborted) co_return false;
        if (more) continue;  // even after EOF: the client half-closed, it still reads
        if (eof) co_return false;
        pool.give_string(std::move(out));  // between requests: hold no reply storage
        if (answered) {
            c.begin_phase(Codec::times_partial_requests && !c.input.empty() ? phase::receiving
                                                                            : phase::waiting);
        }

        // Fair turns: a client whose next requests have always arrived already (pipelining)
        // would keep the thread, its batches needing no wait; after a few, the other
        // connections go first.
        if (++awake >= batches_per_turn) {
            awake = 0;
            co_await asio::post(asio::deferred);
            if (c.closing || c.via->closing || c.aborted) co_return false;
        }
        // Reads what has arrived into the shard's scratch buffer and keeps it in c.input;
        // if nothing has, waits for readability, holding no buffer while it waits.
        for (;;) {
            const read_outcome got = read_arrived<Codec>(c, limits);
            if (got == read_outcome::eof) eof = true;
            if (got == read_outcome::failed) co_return false;
            if (got != read_outcome::nothing) break;
            // A connection with no byte of a request may be closed to make room.
            if (c.input.empty()) c.wait_idle();
            c.in_read_wait = true;
            auto [wait_ec] = co_await c.wire.async_wait_next_bytes(c.owner.readiness(), as_tuple);
            c.in_read_wait = false;
            awake = 0;
            c.idle.unlink();
            if (c.closing || c.via->closing) co_return false;
            if (std::exchange(c.park_requested, false) && wait_ec == asio::error::operation_aborted)
                co_return true;  // bytes that came first keep it here
            if (wait_ec) co_return false;
        }
    }
}

// What the connection needs of its framing, by framing_kind: the serving loop compiled for
// its codec, and the codec's answers the connection needs outside that loop.
struct framing_entry {
    asio::awaitable<bool> (*serve)(client_connection&);
    bool decodes_before_input;
    void (*encode_too_slow)(std::string&);
};
constexpr auto framings = per_framing<framing_entry>([]<class C>(std::type_identity<C>) {
    return framing_entry{&serve<C>, C::decodes_before_input, &C::encode_too_slow};
});

const framing_entry& framing_of(const client_connection& c) noexcept {
    return framings[static_cast<std::size_t>(c.framing)];
}

}  // namespace

void client_connection::too_slow() noexcept {
    std::string reply;
    if (!streaming) framing_of(*this).encode_too_slow(reply);
    if (reply.empty()) {
        // Nothing to say in the connection's protocol: cancel what it waits for.
        if (via->warnings[warning_kind::message_timeout].first())
            log::warn("listener " + via->spec.name + ": " + peer +
                          " did not send the rest of a message within request_timeout_ms (" +
                          std::to_string(limits().request_timeout.count()) + "): closed",
                      {log::tag("listener", via->spec.name), log::tag("peer", peer)});
        abort(failure::timeout);
        return;
    }
    boost::system::error_code ignored;
    const std::size_t sent = wire.write_now(asio::buffer(reply), ignored);  // never waits
    if (auto* traffic = via->traffic) {
        ++traffic->slow_requests;
        traffic->bytes_out += sent;
    }
    if (via->warnings[warning_kind::slow_request].first()) {
        log::warn("listener " + via->spec.name + ": " + peer +
                      " did not send a whole request within request_timeout_ms (" +
                      std::to_string(limits().request_timeout.count()) + "): answered \"" +
                      reply.substr(0, reply.find_first_of("\r\n")) + "\", closed",
                  {log::tag("listener", via->spec.name), log::tag("peer", peer)});
    }
    close_when_idle();
}

void client_connection::start() noexcept {
    wire.prepare();
    if (wire.is_tls()) {
        begin_phase(phase_kind::handshaking);
        continue_handshake();
        return;
    }
    if (framing_of(*this).decodes_before_input) {
        resume();  // the plugin may speak first (a banner, a handshake)
        return;
    }
    await_request();
}

namespace {

// A client that spoke plaintext to a TLS port: an HTTP client is told so in plaintext, as
// nginx does (its request is read first, so closing does not reset the reply away); any
// other is just closed.
void refuse_plaintext(client_connection& c) {
    if (c.framing != framing_kind::http) return;
    const auto scratch = c.owner.scratch();
    for (int reads = 0; reads < 16; ++reads) {
        boost::system::error_code ec;
        const std::size_t n = c.wire.read_raw(scratch, ec);
        if (ec || n < scratch.size()) break;
    }
    static constexpr std::string_view body =
        "This port speaks TLS: use https:// (the request was sent in plaintext).\n";
    const std::string reply =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + std::string{body};
    boost::system::error_code ignored;
    c.wire.write_raw(asio::buffer(reply), ignored);  // never waits: a few bytes
}

}  // namespace

namespace {

// A connection's coroutine ended by an exception nothing else caught: says so. `what`:
// "connection from ", "WebSocket session of ".
void log_ended_by(const client_connection& c, std::exception_ptr error, const char* what) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        log::error("listener " + c.via->spec.name + ": " + what + c.peer +
                       " ended by an error: " + e.what(),
                   {log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
    } catch (...) {
        log::error("listener " + c.via->spec.name + ": " + what + c.peer +
                   " ended by a non-standard exception");
    }
}

}  // namespace

void client_connection::continue_handshake() noexcept {
    const handshake_step step = closing || via->closing ? handshake_step::failed : wire.handshake();
    listener_stats* traffic = via->traffic;
    switch (step) {
        case handshake_step::done:
            if (traffic) ++(wire.resumed() ? traffic->tls_resumed : traffic->tls_full);
            begin_phase(phase_kind::waiting);
            if (framing_of(*this).decodes_before_input) {
                resume();
            } else {
                await_request();
            }
            return;
        case handshake_step::want_read:
        case handshake_step::want_write:
            in_read_wait = true;  // close_when_idle (the sweeper's timeout, a stop) cancels it
            wire.async_wait(step == handshake_step::want_write,
                            [this](const boost::system::error_code& error) {
                                in_read_wait = false;
                                if (error) closing = true;
                                continue_handshake();
                            });
            return;
        case handshake_step::plaintext:
            if (traffic) ++traffic->tls_failed;
            refuse_plaintext(*this);
            break;
        case handshake_step::failed:
            if (traffic) ++traffic->tls_failed;
            log::debug("listener " + via->spec.name + ": TLS handshake with " + peer +
                           " failed: " + (closing ? "timed out or closed" : wire.handshake_error()),
                       {log::tag("listener", via->spec.name), log::tag("peer", peer)});
            break;
    }
    finish();
}

void client_connection::await_request() noexcept {
    // Bytes that came while nothing waited for them (during the last request, or before
    // accept) raise no new readiness event: look before waiting.
    if (wire.readable_now()) {
        resume();  // bytes, end of input or an error: the coroutine reads which
        return;
    }
    // Nothing received yet, or between requests: the first to go when the listener is full.
    if (input.empty()) wait_idle();
    in_read_wait = parked = true;
    wire.async_wait_next_bytes(owner.readiness(), [this](const boost::system::error_code& error) {
        in_read_wait = parked = false;
        idle.unlink();
        if (error || closing || via->closing) {
            finish();
        } else {
            resume();
        }
    });
}

void client_connection::resume() noexcept {
    // The cancellation signal is the coroutine's: abort() reaches whatever it awaits.
    launch_coroutine(owner.io().get_executor(), framing_of(*this).serve(*this), cancel.slot(),
                     [this](std::exception_ptr error, bool parking) noexcept {
                         if (error) {
                             log_ended_by(*this, error, "connection from ");
                         } else if (parking) {
                             cancel.slot().clear();  // a parked connection holds none of it
                             await_request();
                             return;
                         } else if (session) {
                             serve_websocket();
                             return;
                         }
                         finish();
                     });
}

// The connection after its upgrade: the final plugin of its chain serves it as a WebSocket
// session (handler::serve_session), spawned as it is: no frame of the core's stands between
// the plugin's coroutine and the spawn's, so an idle session holds only what it needs (the
// serving loop's frame, with the codec's buffers, is gone by then). The session pinned only
// that plugin's version and the table (session_begins, before the 101 went out);
// session_served releases them as soon as the plugin is done, before waiting for the
// client's close, so an old version unloads without waiting for slow clients.
void client_connection::serve_websocket() noexcept {
    cancel.slot().clear();
    const chain_slot& chain = session->chain();
    if (listener_stats* traffic = via->traffic) ++traffic->websocket_upgrades;
    const plugin_version& answering = chain.answering();
    this_thread_runs() = {answering.spec().name.c_str(), answering.generation(),
                          via->spec.name.c_str(), peer.c_str()};
    begin_phase(phase_kind::handling);
    // Posted now, it runs once serve_session (started below, at once) first waits. Not
    // after the launch: a session that never waits may be gone by then.
    session->serving_began();
    try {
        launch_coroutine(owner.io().get_executor(), chain.handlers.back()->serve_session(*session),
                         cancel.slot(),
                         [this](std::exception_ptr error) noexcept { session_served(error); });
    } catch (...) {
        session_served(std::current_exception());  // a plugin that threw before its coroutine
    }
}

void client_connection::session_served(std::exception_ptr error) noexcept {
    this_thread_runs() = {};
    websocket_session& s = *session;
    const chain_slot& chain = s.chain();
    const request_failure* failed = nullptr;
    std::string route, plugin;
    try {
        if (error) failed = request_failed(*this, chain, error);
        if (via->spec.access_log) {
            route = chain.route;
            plugin = *chain.plugin;
        }
    } catch (...) {
        failed = &failure::exception;  // out of memory for the log line: counted all the same
    }
    if (aborted) failed = aborted;
    chain.count_judged(judged_error(failed, 0));  // a session has no handler time to judge
    if (failed == &failure::exception && chain.requests)
        ++chain.requests->errors[static_cast<std::size_t>(request_error::exception)];
    s.release();  // the table may go with it: chain is not to be used below
    owner.session_ends(s.table(), *chain.links.back());
    cancel.slot().clear();
    launch_coroutine(owner.io().get_executor(),
                     end_session(*this, failed, std::move(route), std::move(plugin)), cancel.slot(),
                     [this](std::exception_ptr error) noexcept {
                         if (error) log_ended_by(*this, error, "WebSocket session of ");
                         finish();
                     });
}

void client_connection::finish() noexcept {
    wire.close();
    // Not here: the coroutine machinery that called us may still use the signal's slot
    // until this handler returns.
    asio::post(owner.io(), [this] { delete this; });
}

}  // namespace plugd
