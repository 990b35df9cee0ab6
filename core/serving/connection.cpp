// connection: the life of a request, from bytes read to reply written.
#include "serving/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

#include <plugd/context.hpp>
#include <plugd/handler.hpp>

#include "framing/line_framing.hpp"
#include "log.hpp"
#include "serving/listener.hpp"

namespace plugd {
namespace {

using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

std::string format_peer(const tcp::socket& s) {
    boost::system::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    return ec ? "unknown" : format_endpoint(ep);
}

// A request starts: it is served by the route's plugin version current now, so a reload
// swaps the version between requests, also on connections that stay open.
plugin_ref& begin_request(connection& c) noexcept {
    plugin_ref& plugin = *c.via->plugin;
    ++plugin.in_flight;
    c.active = &plugin;
    ++c.requests;
    return plugin;
}

// The handler threw `error`: logs it with the plugin's name and returns the client's line.
const char* request_failed(const connection& c, const plugin_ref& plugin,
                           std::exception_ptr error) {
    if (c.abort_reply) return c.abort_reply;  // the throw is the cancellation we caused
    try {
        std::rethrow_exception(error);
    } catch (const busy& e) {
        log::warn(std::string{e.what()} + " (" + c.peer + " on listener " + c.via->spec.name +
                  " got ERR busy; raise /offload_queue or /offload_threads if this persists)");
        return "ERR busy";
    } catch (const std::exception& e) {
        log::error("plugin " + plugin.version->spec().name + " failed a request from " + c.peer +
                   " on listener " + c.via->spec.name + ": " + e.what());
    } catch (...) {
        log::error("plugin " + plugin.version->spec().name +
                   " threw a non-standard exception for " + c.peer);
    }
    return "ERR internal error";
}

// A request ends: replaces what the handler wrote since `mark` by the error line, if any,
// and releases the version. True when the request was aborted by the watchdog, whose
// cancellation the caller must then clear so the error line can still be written.
bool end_request(connection& c, plugin_ref& plugin, std::string& out, std::size_t mark,
                 const char* failure) {
    if (c.abort_reply) failure = c.abort_reply;
    if (failure) {
        out.resize(mark);
        out += failure;
    }
    c.active = nullptr;
    c.owner.request_done(plugin);
    return c.abort_reply != nullptr;
}

// After refusing a request, the client may still be sending it. Closing a socket with
// unread input sends a reset, which can destroy our error reply before the client reads it;
// so, as nginx's lingering close does, stop sending and discard input for a bounded time
// (the watchdog's deadline) and amount.
asio::awaitable<void> linger(connection& c, std::string& scratch) {
    c.closing = true;
    c.stop_idle();
    boost::system::error_code ignored;
    c.socket.shutdown(tcp::socket::shutdown_send, ignored);
    std::size_t discarded = 0;
    while (discarded < (std::size_t{1} << 24)) {
        auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(scratch), as_tuple);
        if (ec) co_return;
        discarded += n;
    }
}

// Writes `out` and clears it; false when the connection is gone. The shard's sweeper
// closes a connection whose client stops reading for write_timeout_ms.
asio::awaitable<bool> write_out(connection& c, std::string& out) {
    ++c.writes;
    c.writing = true;
    auto [ec, n] = co_await asio::async_write(c.socket, asio::buffer(out), as_tuple);
    c.writing = false;
    out.clear();
    co_return !ec;
}

asio::awaitable<void> serve_lines(connection& c) {
    // Start small and grow to the limit only for clients that send long lines: ten
    // thousand idle connections must not cost ten thousand maximum-size buffers.
    std::string in(std::min<std::size_t>(4096, c.limits().max_request_bytes + 2), '\0');
    std::size_t begin = 0, end = 0;
    std::string out;
    bool eof = false;
    for (;;) {
        const auto& limits = c.limits();
        bool refuse = false;
        bool answered = false;
        bool more = false;  // complete requests still buffered: answer them before reading
        // A closing route (shutdown, listener removed by a reload) starts no new request:
        // its plugin version may already be gone once the current request has finished.
        while (!c.via->closing && !c.closing) {
            auto frame = next_line({in.data() + begin, end - begin}, limits.max_request_bytes);
            if (frame.what == line_frame::kind::too_large) {
                refuse = true;
                break;
            }
            if (frame.what == line_frame::kind::incomplete) {
                // At end of input, what is left is a last request without its '\n'.
                if (!eof || begin == end) break;
                frame = {line_frame::kind::request, {in.data() + begin, end - begin}, end - begin};
            }
            c.busy = true;
            // The handler is awaited here rather than in a helper coroutine: one coroutine
            // frame less per request is a visible share of a pipelined request's cost.
            plugin_ref& plugin = begin_request(c);
            const std::size_t mark = out.size();
            const char* failure = nullptr;
            try {
                reply answer{out};
                co_await plugin.version->handler().handle(
                    request{frame.message, c.peer, c.via->spec.name}, answer);
            } catch (...) {
                failure = request_failed(c, plugin, std::current_exception());
            }
            if (end_request(c, plugin, out, mark, failure))
                co_await asio::this_coro::reset_cancellation_state();
            out += '\n';
            begin += frame.consumed;
            answered = true;
            if (c.abort_reply) break;
            // Pipelined requests from a client that does not read would otherwise grow
            // `out` without bound: stop at the cap and write first.
            if (out.size() >= limits.max_output_bytes) {
                more = true;
                break;
            }
        }
        if (refuse) {
            c.closing = true;  // nothing may evict it before the client has read why
            out += "ERR request too large\n";
        }
        if (!out.empty() && !co_await write_out(c, out)) co_return;
        c.busy = false;
        if (answered && !c.closing) c.deadline = clock::now() + limits.idle_timeout;
        if (refuse) {
            c.deadline =
                clock::now() + std::min(limits.idle_timeout, std::chrono::milliseconds{2000});
            c.watchdog_timer.cancel();  // it sleeps until the old, later deadline: re-arm
            co_return co_await linger(c, in);
        }
        if (c.via->closing || c.closing || c.abort_reply) co_return;
        if (more) continue;  // even after EOF: the client half-closed, it still reads
        if (eof) co_return;

        if (begin == end) {
            begin = end = 0;
        } else if (end == in.size()) {
            if (begin > 0) {
                std::memmove(in.data(), in.data() + begin, end - begin);
                end -= begin;
                begin = 0;
            } else {
                in.resize(std::min(in.size() * 2, limits.max_request_bytes + 2));
            }
        }
        if (begin == end) c.wait_idle();  // a partial request is never closed to make room
        auto [ec, n] = co_await c.socket.async_read_some(
            asio::buffer(in.data() + end, in.size() - end), as_tuple);
        c.stop_idle();
        if (ec == asio::error::eof)
            eof = true;
        else if (ec)
            co_return;
        end += n;
    }
}

asio::awaitable<void> serve_oneshot(connection& c) {
    std::string in(c.limits().max_request_bytes, '\0');
    auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(in), as_tuple);
    c.stop_idle();
    if (ec || n == 0 || c.via->closing || c.closing) co_return;
    c.busy = true;
    std::string out;
    plugin_ref& plugin = begin_request(c);
    const char* failure = nullptr;
    try {
        reply answer{out};
        co_await plugin.version->handler().handle(request{{in.data(), n}, c.peer, c.via->spec.name},
                                                  answer);
    } catch (...) {
        failure = request_failed(c, plugin, std::current_exception());
    }
    if (end_request(c, plugin, out, 0, failure))
        co_await asio::this_coro::reset_cancellation_state();
    co_await write_out(c, out);
    c.busy = false;
}

// Ends when the connection has been idle past its deadline, was asked to close while
// idle, or was aborted; the || in serve_connection then cancels the reader.
asio::awaitable<void> watchdog(connection& c) {
    for (;;) {
        const auto now = clock::now();
        if (c.abort_reply || (!c.busy && now >= c.deadline)) co_return;
        c.watchdog_timer.expires_at(c.busy ? now + c.limits().idle_timeout : c.deadline);
        auto [ec] = co_await c.watchdog_timer.async_wait(as_tuple);
        if (ec) {
            auto state = co_await asio::this_coro::cancellation_state;
            if (state.cancelled() != asio::cancellation_type::none) co_return;
        }
    }
}

}  // namespace

void connection::wait_idle() noexcept {
    idle.unlink();
    via->idle.push_back(idle);
}

connection::connection(shard& s, std::shared_ptr<route> r, tcp::socket sock)
    : owner{s},
      via{std::move(r)},
      socket{std::move(sock)},
      peer{format_peer(socket)},
      watchdog_timer{socket.get_executor()},
      deadline{clock::now() + via->spec.limits.idle_timeout} {
    idle.self = this;
    registration = owner.enter(this);
    wait_idle();  // nothing received yet: the first to go when the listener is full
}

connection::~connection() {
    owner.leave(registration);
}

void connection::abort(const char* reply) noexcept {
    abort_reply = reply;
    watchdog_timer.cancel();
}

void connection::close_when_idle() noexcept {
    closing = true;
    stop_idle();
    deadline = clock::time_point::min();
    watchdog_timer.cancel();
}

asio::awaitable<void> serve_connection(shard& s, std::shared_ptr<route> r, tcp::socket sock) {
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay{true}, ignored);
    connection c{s, std::move(r), std::move(sock)};
    if (c.via->spec.framing == framing_kind::line) {
        co_await (serve_lines(c) || watchdog(c));
    } else {
        co_await (serve_oneshot(c) || watchdog(c));
    }
    c.socket.shutdown(tcp::socket::shutdown_both, ignored);
    c.socket.close(ignored);
}

}  // namespace plugd
