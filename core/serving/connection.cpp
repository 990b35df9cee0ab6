// connection: the life of a request, from bytes read to reply written.
#include "serving/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <utility>

#include <plugd/context.hpp>
#include <plugd/handler.hpp>

#include "faults/running_code.hpp"
#include "framing/http_framing.hpp"
#include "framing/line_framing.hpp"
#include "log.hpp"
#include "serving/listener.hpp"
#include "serving/raw_stream.hpp"

namespace plugd {
namespace {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

std::string format_peer(const tcp::socket& s) {
    boost::system::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    return ec ? "unknown" : format_endpoint(ep);
}

// A request starts: it is served by the route's plugin version current now, so a reload
// swaps the version between requests, also on connections that stay open.
plugin_ref& begin_request(client_connection& c) noexcept {
    plugin_ref& plugin = *c.via->plugin;
    ++plugin.in_flight;
    c.active = &plugin;
    c.enter(client_connection::phase_kind::handling);
    // What a stall or crash report names; alive while the request runs.
    this_thread_runs() = {plugin.version->spec().name.c_str(), plugin.version->generation(),
                          c.via->spec.name.c_str(), c.peer.c_str()};
    return plugin;
}

// The handler threw `error`: logs it with the plugin's name and returns how it failed.
// Only the first of a kind on this listener and thread is logged at once; the shard's
// sweeper counts the rest into a line every 5 s at most (repeated_warning).
const request_failure* request_failed(const client_connection& c, const plugin_ref& plugin,
                                      std::exception_ptr error) {
    if (c.aborted) return c.aborted;  // the throw is the cancellation we caused
    try {
        std::rethrow_exception(error);
    } catch (const busy& e) {
        if (!c.via->warnings[warning_kind::busy].first()) return &failure::busy;
        log::warn(std::string{e.what()} + " (" + c.peer + " on listener " + c.via->spec.name +
                      " got ERR busy; raise /offload_queue or /offload_threads if this persists)",
                  {log::tag("plugin", plugin.version->spec().name),
                   log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
        return &failure::busy;
    } catch (const std::exception& e) {
        if (!c.via->warnings[warning_kind::handler_failed].first()) return &failure::exception;
        log::error("plugin " + plugin.version->spec().name + " failed a request from " + c.peer +
                       " on listener " + c.via->spec.name + ": " + e.what(),
                   {log::tag("plugin", plugin.version->spec().name),
                    log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
    } catch (...) {
        if (!c.via->warnings[warning_kind::handler_failed].first()) return &failure::exception;
        log::error("plugin " + plugin.version->spec().name +
                       " threw a non-standard exception for " + c.peer,
                   {log::tag("plugin", plugin.version->spec().name),
                    log::tag("listener", c.via->spec.name), log::tag("peer", c.peer)});
    }
    return &failure::exception;
}

// A request ends: replaces what the handler wrote since `mark` by the error line, if any,
// and releases the version. True when the request was aborted, whose cancellation the
// caller must then clear so the error line can still be written.
bool end_request(client_connection& c, plugin_ref& plugin, std::string& out, std::size_t mark,
                 const request_failure* failed) {
    if (c.aborted) failed = c.aborted;
    if (failed) {
        out.resize(mark);
        out += failed->line;
    }
    c.active = nullptr;
    this_thread_runs() = {};
    c.owner.request_done(plugin);
    return c.aborted != nullptr;
}

// After refusing a request, the client may still be sending it. Closing a socket with
// unread input sends a reset, which can destroy our error reply before the client reads it;
// so, as nginx's lingering close does, stop sending and discard input for a bounded time
// (the sweeper ends it) and amount. Discarded bytes may share the scratch buffer with
// every other lingering connection: nobody reads them.
asio::awaitable<void> linger(client_connection& c) {
    c.closing = true;
    c.enter(client_connection::phase_kind::lingering);
    boost::system::error_code ignored;
    c.socket.shutdown(tcp::socket::shutdown_send, ignored);
    const auto scratch = c.owner.scratch();
    std::size_t discarded = 0;
    while (discarded < (std::size_t{1} << 24)) {
        auto [ec, n] = co_await c.socket.async_read_some(
            asio::buffer(scratch.data(), scratch.size()), as_tuple);
        if (ec) co_return;
        discarded += n;
    }
}

}  // namespace

client_connection::client_connection(shard& s, std::shared_ptr<route> r, tcp::socket sock)
    : owner{s},
      via{std::move(r)},
      socket{std::move(sock)},
      peer{format_peer(socket)},
      framing{via->spec.framing} {
    in_shard.self = idle.self = this;
    owner.enter(*this);
}

client_connection::~client_connection() {
    input.release(owner.buffers());
    owner.leave(*this);
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
    boost::system::error_code ignored;
    socket.cancel(ignored);
}

void client_connection::refuse_slow_request() noexcept {
    std::string response;
    append_http_response(response, 408, "request not received in time", true, false);
    boost::system::error_code ignored;
    const std::size_t sent = socket.write_some(asio::buffer(response), ignored);  // never waits
    if (auto* traffic = via->traffic) {
        ++traffic->slow_requests;
        traffic->bytes_out += sent;
    }
    if (via->warnings[warning_kind::slow_request].first()) {
        log::warn("listener " + via->spec.name + ": " + peer +
                      " did not send a whole request within request_timeout_ms (" +
                      std::to_string(limits().request_timeout.count()) + "): answered 408, closed",
                  {log::tag("listener", via->spec.name), log::tag("peer", peer)});
    }
    close_when_idle();
}

void client_connection::write_unsent() noexcept {
    unsent_replies& u = *unsent;
    boost::system::error_code ec;  // would_block, or an error the next write meets again
    const std::size_t n =
        socket.write_some(asio::buffer(u.out->data() + u.sent, u.end - u.sent), ec);  // never waits
    u.sent += n;
    if (auto* traffic = via->traffic) traffic->bytes_out += n;
}

void client_connection::close_when_idle() noexcept {
    closing = true;
    idle.unlink();
    if (in_read_wait || phase == phase_kind::lingering) {
        boost::system::error_code ignored;
        socket.cancel(ignored);
    }
}

namespace {

// What the framing found at the start of a connection's unhandled bytes.
struct framed {
    enum class kind { none, request, refused } what = kind::none;
    std::string_view message;  ///< what the handler gets
    std::size_t consumed = 0;
    bool keep_alive = true;      ///< http: the client keeps the connection after this one
    bool http10 = false;         ///< http: answer as 1.0
    bool send_continue = false;  ///< http: none yet, and the client waits for 100 Continue
    int status = 0;              ///< refused http: the status to answer
    const char* reason = "";     ///< refused: why
    http_request_view http;      ///< http: the rest of what the handler can see
};

// Per-coroutine strings the http framing reuses: a chunked body joined, a decoded target.
struct http_strings {
    std::string chunked, decoded;
};

// Takes a connection out of its shard's list of connections with unsent replies once its
// request has ended, before anything may throw: `unsent` points into the serving frame.
// (Not a guard in the frame: a frame destroyed with its shard's event loop outlives the
// connection, which leaves the list as it is deleted.)
void release_unsent(client_connection& c) noexcept {
    if (!c.unsent) return;
    c.idle.unlink();
    c.unsent = nullptr;
}

// A plain request of `consumed` bytes whose message is `message`.
framed plain_request(std::string_view message, std::size_t consumed) noexcept {
    framed f;
    f.what = framed::kind::request;
    f.message = message;
    f.consumed = consumed;
    return f;
}

framed next_request(client_connection& c, framing_kind framing, bool eof, http_strings& http) {
    framed f;
    const std::string_view input = c.input.view();
    const std::size_t max = c.limits().max_request_bytes;
    switch (framing) {
        case framing_kind::oneshot:
            return plain_request(input, input.size());
        case framing_kind::http: {
            const http_frame h = next_http_request(input, max, http.chunked);
            if (h.what == http_frame::kind::error) {
                f.what = framed::kind::refused;
                f.status = h.status;
                f.reason = h.reason;
            } else if (h.what == http_frame::kind::incomplete) {
                f.send_continue = h.wants_continue;
            } else {
                f.what = framed::kind::request;
                f.message = http_message(h, http.decoded);
                f.http = {h.method, h.target, h.body, h.head};
                f.consumed = h.consumed;
                f.keep_alive = h.keep_alive;
                f.http10 = h.http10;
            }
            return f;
        }
        case framing_kind::line:
        case framing_kind::raw:  // never framed: see serve_whole
            break;
    }
    const line_frame l = next_line(input, max);
    if (l.what == line_frame::kind::too_large) {
        f.what = framed::kind::refused;
        f.reason = "ERR request too large";
    } else if (l.what == line_frame::kind::request) {
        f = plain_request(l.message, l.consumed);
    } else if (eof) {
        // At end of input, what is left is a last request without its '\n'.
        f = plain_request(input, input.size());
    }
    return f;
}

// One line of a listener's access log: who asked which plugin, and how it ended.
void log_access(const client_connection& c, const std::string& plugin, std::string_view outcome,
                std::size_t bytes_in, std::size_t bytes_out,
                std::chrono::steady_clock::time_point started) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    log::info("access", {{"listener", c.via->spec.name},
                         {"peer", c.peer},
                         {"plugin", plugin},
                         {"outcome", outcome},
                         {"bytes_in", std::to_string(bytes_in)},
                         {"bytes_out", std::to_string(bytes_out)},
                         {"duration_us", std::to_string(us)}});
}

// A `raw` listener: the plugin serves the whole connection. It is one request from the
// core's point of view: it holds the version it started on until it ends (a reload's drain
// waits for it, up to reload_drain_timeout_ms), and its phases are timed as a request's.
asio::awaitable<void> serve_whole(client_connection& c) {
    if (c.via->closing || c.closing) co_return;
    request_stats* counted = c.via->requests;
    const bool access = c.via->spec.access_log;
    const auto started = access || counted ? std::chrono::steady_clock::now()
                                           : std::chrono::steady_clock::time_point{};
    plugin_ref& plugin = begin_request(c);
    const std::string plugin_name = access ? plugin.version->spec().name : std::string{};
    raw_stream stream{c};
    const request_failure* failed = nullptr;
    try {
        co_await plugin.version->handler().serve(stream);
    } catch (...) {
        failed = request_failed(c, plugin, std::current_exception());
    }
    std::string unused;  // a raw connection gets no error line: its protocol is the plugin's
    if (c.aborted) failed = c.aborted;
    end_request(c, plugin, unused, 0, nullptr);
    if (counted) {
        counted->record(std::chrono::steady_clock::now() - started);
        // The sweeper counted a write timeout already.
        if (failed && failed != &failure::write_timeout)
            ++counted->errors[static_cast<std::size_t>(failed->kind)];
    }
    if (access) {
        log_access(c, plugin_name, failed ? (*failed->line ? failed->line : "closed") : "ok",
                   stream.bytes_in(), stream.bytes_out(), started);
    }
}

// One loop for every framing: `line` answers every complete line and reads on; `http`
// answers every complete request (its reply becomes a text/plain body) and reads on while
// the client keeps the connection; `oneshot` takes the first read as its one request and
// closes after the reply. The handler is awaited here rather than in a helper coroutine,
// and reading is inline too: a coroutine frame less per request is a visible share of a
// pipelined request's cost. True when the connection parked (it waits for bytes without a
// coroutine), false when it is to close.
asio::awaitable<bool> serve(client_connection& c) {
    const framing_kind framing = c.framing;
    if (framing == framing_kind::raw) {
        co_await serve_whole(c);
        co_return false;
    }
    const bool oneshot = framing == framing_kind::oneshot;
    const bool http = framing == framing_kind::http;
    buffer_pool& pool = c.owner.buffers();
    std::string out;
    std::string body;             // http: the handler's reply, before its head goes in front of it
    std::string fields;           // http: the header fields the handler set
    http_strings reused;          // http: a chunked body joined, a target decoded
    unsent_replies unsent{&out};  // of `out`: what an early write has sent
    bool eof = false;
    bool continue_sent = false;  // http: 100 Continue went out for the request being read
    for (;;) {
        const auto& limits = c.limits();
        framed refusal;
        bool answered = false;
        bool more = false;  // complete requests still buffered: answer them before reading
        // A closing route (shutdown, listener removed by a reload) starts no new request:
        // its plugin version may already be gone once the current request has finished.
        while (!c.via->closing && !c.closing && !c.input.empty()) {
            const framed next = next_request(c, framing, eof, reused);
            if (next.what == framed::kind::refused) {
                refusal = next;
                break;
            }
            if (next.what == framed::kind::none) {
                if (next.send_continue && !continue_sent) {
                    out += "HTTP/1.1 100 Continue\r\n\r\n";
                    continue_sent = true;
                }
                break;
            }
            if (out.empty()) out = pool.take_string();  // a reply string that has grown before
            std::string& sink = http ? body : out;
            http_reply_head head{200, &fields};
            if (http) {
                body.clear();
                fields.clear();
            }
            // The access log's and the metrics' clock reads and the copied name cost nothing
            // when they are off.
            const bool access = c.via->spec.access_log;
            request_stats* counted = c.via->requests;  // the plugin's now, even after a reload
            const auto started = access || counted ? std::chrono::steady_clock::now()
                                                   : std::chrono::steady_clock::time_point{};
            plugin_ref& plugin = begin_request(c);
            const std::string plugin_name = access ? plugin.version->spec().name : std::string{};
            const std::size_t mark = sink.size();
            const request_failure* failed = nullptr;
            // Replies before this request wait for the batch's write; should this handler
            // wait first, they go out then (see host/suspension.hpp).
            if (const std::size_t finished = http ? out.size() : mark; finished > unsent.sent) {
                unsent.end = finished;
                c.unsent = &unsent;
                c.owner.hold_unsent(c);
            }
            try {
                reply answer{sink, http ? &head : nullptr};
                co_await plugin.version->handler().handle(
                    request{next.message, c.peer, c.via->spec.name, http ? &next.http : nullptr},
                    answer);
                release_unsent(c);
            } catch (...) {
                release_unsent(c);  // first: logging the failure may throw
                failed = request_failed(c, plugin, std::current_exception());
            }
            if (c.aborted) failed = c.aborted;
            if (end_request(c, plugin, sink, mark, failed))
                co_await asio::this_coro::reset_cancellation_state();
            c.input.consume(next.consumed);
            answered = true;
            continue_sent = false;
            const int status = failed ? failed->status : head.status;
            if (counted) {
                counted->record(std::chrono::steady_clock::now() - started);
                if (failed) ++counted->errors[static_cast<std::size_t>(failed->kind)];
            }
            if (access) {
                const std::string outcome =
                    http ? std::to_string(status) : (failed ? failed->line : "ok");
                log_access(c, plugin_name, outcome, next.consumed, sink.size() - mark, started);
            }
            if (http) {
                // Closing (a stop, or its listener removed by a reload) or about to (a
                // drain): say so, so a keep-alive client leaves cleanly between requests
                // instead of meeting a closed socket.
                const bool close = !next.keep_alive || c.aborted || c.closing || c.via->closing ||
                                   c.owner.draining();
                append_http_response(out, status, body, close, next.http10,
                                     failed ? std::string_view{} : std::string_view{fields});
                if (close) c.closing = true;
            } else if (!oneshot) {
                out += '\n';
            }
            if (oneshot || c.aborted || c.closing) break;
            // Pipelined requests from a client that does not read would otherwise grow
            // `out` without bound: stop at the cap and write first.
            if (out.size() >= limits.max_output_bytes) {
                more = true;
                break;
            }
        }
        const bool refuse = refusal.what == framed::kind::refused;
        c.input.release_if_empty(pool);  // nothing left to handle: hold no buffer
        listener_stats* traffic = c.via->traffic;
        if (refuse) {
            if (traffic) ++traffic->bad_requests;
            c.closing = true;  // nothing may evict it before the client has read why
            if (http) {
                append_http_response(out, refusal.status, refusal.reason, true, false);
            } else {
                (out += refusal.reason) += '\n';
            }
        }
        if (out.size() > unsent.sent) {
            c.enter(client_connection::phase_kind::writing);
            auto [ec, n] = co_await asio::async_write(
                c.socket, asio::buffer(out.data() + unsent.sent, out.size() - unsent.sent),
                as_tuple);
            if (traffic) traffic->bytes_out += n;
            if (ec) co_return false;
        }
        out.clear();
        unsent.sent = 0;
        if (refuse) {
            co_await linger(c);
            co_return false;
        }
        if (oneshot && answered) co_return false;
        if (c.via->closing || c.closing || c.aborted) co_return false;
        if (more) continue;  // even after EOF: the client half-closed, it still reads
        if (eof) co_return false;
        pool.give_string(std::move(out));  // between requests: hold no reply storage
        if (answered) {
            c.enter(http && !c.input.empty() ? client_connection::phase_kind::receiving
                                             : client_connection::phase_kind::waiting);
        }

        // Reads what has arrived into the shard's scratch buffer and keeps it in c.input;
        // if nothing has, waits for readability, holding no buffer while it waits.
        const auto scratch = c.owner.scratch();
        std::size_t allowance =
            oneshot ? limits.max_request_bytes : limits.max_request_bytes + 2 - c.input.size();
        bool got = false;
        while (allowance > 0) {
            boost::system::error_code ec;
            const std::size_t chunk = std::min(scratch.size(), allowance);
            const std::size_t n = c.socket.read_some(asio::buffer(scratch.data(), chunk), ec);
            if (ec == asio::error::would_block) {
                if (got) break;
                // A connection with no byte of a request may be closed to make room.
                if (c.input.empty()) c.wait_idle();
                c.in_read_wait = true;
                auto [wait_ec] = co_await c.socket.async_wait(tcp::socket::wait_read, as_tuple);
                c.in_read_wait = false;
                c.idle.unlink();
                if (c.closing || c.via->closing) co_return false;
                if (std::exchange(c.park_requested, false) &&
                    wait_ec == asio::error::operation_aborted)
                    co_return true;  // bytes that came first keep it here
                if (wait_ec) co_return false;
                continue;
            }
            if (ec == asio::error::eof) {
                eof = true;
                break;
            }
            if (ec) co_return false;
            // An HTTP request's first bytes: from now on it must arrive whole in time.
            if (http && c.input.empty()) c.enter(client_connection::phase_kind::receiving);
            if (auto* t = c.via->traffic) t->bytes_in += n;
            c.input.append(pool, scratch.data(), n);
            got = true;
            allowance -= n;
            if (n < chunk) break;  // all that has arrived: spare the read that would say so
        }
        if (oneshot && c.input.empty()) co_return false;
    }
}

}  // namespace

void client_connection::start() noexcept {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay{true}, ignored);
    // Reads are attempted at once and waited for only when nothing has arrived.
    socket.non_blocking(true, ignored);
    if (framing == framing_kind::raw) {
        resume();  // the plugin may speak first (a banner, a handshake)
        return;
    }
    await_request();
}

void client_connection::await_request() noexcept {
    // Readiness is edge-triggered: bytes that came while nothing waited for them (during
    // the last request, or before accept) raise no new event, so look before waiting.
    char probe;
    boost::system::error_code ec;
    socket.receive(asio::buffer(&probe, 1), tcp::socket::message_peek, ec);
    if (ec != asio::error::would_block) {
        resume();  // bytes, end of input or an error: the coroutine reads which
        return;
    }
    // Nothing received yet, or between requests: the first to go when the listener is full.
    if (input.empty()) wait_idle();
    in_read_wait = parked = true;
    socket.async_wait(tcp::socket::wait_read, [this](const boost::system::error_code& error) {
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
    asio::co_spawn(
        owner.io(), serve(*this),
        asio::bind_cancellation_slot(cancel.slot(), [this](std::exception_ptr error, bool parking) {
            if (error) {
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    log::error("listener " + via->spec.name + ": connection from " + peer +
                                   " ended by an error: " + e.what(),
                               {log::tag("listener", via->spec.name), log::tag("peer", peer)});
                } catch (...) {
                    log::error("listener " + via->spec.name + ": connection from " + peer +
                               " ended by a non-standard exception");
                }
            } else if (parking) {
                cancel.slot().clear();  // a parked connection holds none of it
                await_request();
                return;
            }
            finish();
        }));
}

void client_connection::finish() noexcept {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    // Not here: the coroutine machinery that called us may still use the signal's slot
    // until this handler returns.
    asio::post(owner.io(), [this] { delete this; });
}

}  // namespace plugd
