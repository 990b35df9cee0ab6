// websocket_session: a WebSocket session's frames, read and written over its connection.
#include "serving/websocket_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include "framing/utf8_validator.hpp"
#include "host/topic_hub.hpp"
#include "log.hpp"
#include "serving/connection.hpp"
#include "serving/dispatch_table.hpp"

namespace plugd {
namespace {

// Awaited as operations (deferred), not through use_awaitable: Asio then needs no coroutine
// frames of its own to start them, which an idle session would hold while it waits.
constexpr auto as_tuple = asio::as_tuple(asio::deferred);
using phase = client_connection::phase_kind;

/// A control frame built without allocating: a close of at most 125 payload bytes, or a
/// pong answering a ping.
struct control_frame {
    std::array<char, 2 + ws_max_control_payload> bytes;
    std::size_t size = 0;
    std::string_view view() const noexcept { return {bytes.data(), size}; }
};

control_frame close_frame(std::uint16_t code, std::string_view reason) noexcept {
    control_frame f;
    if (code == ws_close_code::no_status) {  // the client's close had no code: echo none
        f.bytes[0] = static_cast<char>(0x88);
        f.bytes[1] = 0;
        f.size = 2;
        return f;
    }
    reason = reason.substr(0, ws_max_close_reason);
    f.bytes[0] = static_cast<char>(0x88);
    f.bytes[1] = static_cast<char>(2 + reason.size());
    f.bytes[2] = static_cast<char>(code >> 8);
    f.bytes[3] = static_cast<char>(code & 0xff);
    if (!reason.empty()) std::memcpy(f.bytes.data() + 4, reason.data(), reason.size());
    f.size = 4 + reason.size();
    return f;
}

control_frame pong_frame(std::string_view payload) noexcept {
    control_frame f;
    payload = payload.substr(0, ws_max_control_payload);
    f.bytes[0] = static_cast<char>(0x8A);
    f.bytes[1] = static_cast<char>(payload.size());
    if (!payload.empty()) std::memcpy(f.bytes.data() + 2, payload.data(), payload.size());
    f.size = 2 + payload.size();
    return f;
}

}  // namespace

websocket_session::websocket_session(client_connection& c, dispatch_table& table,
                                     const chain_slot& chain, std::string_view path_rest)
    : subscriber_endpoint{c.owner.index(), c.via->spec.limits},
      c_{c},
      table_{table},
      chain_{chain},
      path_rest_{path_rest},
      events_{events_ptr{new client_events{c.owner.io()}}} {
    if (c.via->spec.access_log) started_ = std::chrono::steady_clock::now();
}

websocket_session::~websocket_session() {
    // c_ (and its shard's pool) may be gone: at a stop, frames outlive them.
    events_->cancel_deferred();
    corked_.free();
    leave();  // its subscriptions end with it
}

std::string_view websocket_session::peer() const noexcept {
    return c_.peer;
}

std::string_view websocket_session::listener() const noexcept {
    return c_.via->spec.name;
}

std::string_view websocket_session::route() const noexcept {
    return chain_.route;
}

std::string_view websocket_session::attached(std::string_view key) const noexcept {
    return c_.attributes ? c_.attributes->get(key) : std::string_view{};
}

bool websocket_session::runs(const plugin_version* version) const noexcept {
    return !released_ && chain_.links.back()->version.get() == version;
}

void websocket_session::wake() noexcept {
    events_->wake();
}

void websocket_session::fell_behind(slow_subscriber_policy policy) noexcept {
    if (policy == slow_subscriber_policy::close) {
        cut_off_ = true;
        if (waiting) {
            waiting = false;
            events_->wake();
        }
    }
    c_.subscriber_fell_behind(policy);
}

void websocket_session::end_by_server(std::uint16_t code, const char* reason) noexcept {
    server_code_ = code;
    server_reason_ = reason;
    c_.close_when_idle();  // wakes next() if it waits
}

void websocket_session::sweep(std::chrono::milliseconds age) noexcept {
    if (server_code_ || close_sent_ || write_failed_) return;  // ending already
    const websocket_settings& ws = c_.via->spec.websocket;
    if (c_.phase == phase::receiving && age >= c_.limits().request_timeout) {
        end_by_server(ws_close_code::policy_violation,
                      "a message not received whole within request_timeout_ms");
        return;
    }
    if (age >= ws.idle_timeout) {
        if (auto* t = c_.via->traffic) ++t->idle_timeouts;
        end_by_server(ws_close_code::normal, "idle timeout");
        return;
    }
    // One ping per quiet phase: a pong (any frame) starts a new one, so a live client is
    // pinged every ping_interval_ms of silence and a dead one reaches idle_timeout_ms.
    if (ws.ping_interval.count() == 0 || age < ws.ping_interval ||
        pinged_phase_ == static_cast<std::uint32_t>(c_.phase_sequence))
        return;
    pinged_phase_ = static_cast<std::uint32_t>(c_.phase_sequence);
    static constexpr char ping[2] = {static_cast<char>(0x89), 0};
    boost::system::error_code ec;
    const std::size_t n = c_.wire.write_now(asio::buffer(ping, 2), ec);  // never waits
    wrote(n);
    // Half a frame would corrupt the stream: the client is not reading anyway.
    if (n == 1) {
        write_failed_ = true;
        end_by_server(ws_close_code::going_away, "");
    }
}

void websocket_session::drain_timeout() noexcept {
    // The client learns why and may reconnect to the new version at once. Not while a send
    // is under way: its frame would be cut in two.
    if (c_.phase != phase::writing) write_corked_now();
    if (!close_sent_ && !write_failed_ && c_.phase != phase::writing && corked_.empty()) {
        const control_frame f =
            close_frame(ws_close_code::going_away, "the server was reloaded: reconnect");
        boost::system::error_code ec;
        wrote(c_.wire.write_now(asio::buffer(f.view()), ec));
        close_sent_ = true;
        if (!close_code_) close_code_ = ws_close_code::going_away;
    }
    c_.abort(failure::drain_timeout);
}

void websocket_session::ensure_open() const {
    if (close_sent_ || write_failed_ || ended_) {
        throw std::system_error(
            std::make_error_code(std::errc::not_connected),
            "the WebSocket session with " + c_.peer + " has ended; serve_session should return");
    }
}

void websocket_session::ensure_writable() const {
    if (write_failed_) {
        throw boost::system::system_error(asio::error::broken_pipe,
                                          "writing to the WebSocket client " + c_.peer);
    }
}

void websocket_session::set_closed(std::uint16_t code, std::string_view reason) noexcept {
    ended_ = true;
    if (!close_code_) close_code_ = code;
    event_ = {2, message_type::text, code, reason, {}};
}

void websocket_session::wrote(std::size_t n) noexcept {
    bytes_out_ += n;
    if (auto* t = c_.via->traffic) t->bytes_out += n;
}

bool websocket_session::more_published() const noexcept {
    return hub && hub->board_of(*this).has_more(*this);
}

bool websocket_session::cork_written_now() noexcept {
    events_->cancel_deferred();
    c_.begin_phase(phase::writing);
    boost::system::error_code ec;
    std::size_t written = 0;
    const bool wait = c_.wire.write_now_or_wait(corked_.view(), written, ec);
    wrote(written);
    if (wait) {
        corked_.consume(written);
        return false;
    }
    corked_.release(c_.owner.buffers());
    if (ec) write_failed_ = true;
    c_.begin_phase(phase::handling);
    return true;
}

task<void> websocket_session::write_cork_rest() {
    // The cork is the session's own: it outlives the wait, unlike the scratch buffer.
    auto [ec, n] = co_await c_.wire.async_write(asio::buffer(corked_.view()), as_tuple);
    wrote(n);
    corked_.release(c_.owner.buffers());
    if (ec) write_failed_ = true;
    c_.begin_phase(phase::handling);
}

void websocket_session::write_corked_now() noexcept {
    if (corked_.empty() || write_failed_) return;
    boost::system::error_code ec;
    const std::size_t n = c_.wire.write_now(asio::buffer(corked_.view()), ec);
    wrote(n);
    corked_.consume(n);
    corked_.release_if_empty(c_.owner.buffers());
    // A full socket keeps the rest for the next write, which waits for it.
    if (ec && ec != asio::error::would_block) write_failed_ = true;
}

void websocket_session::cork(std::string_view a, std::string_view b) {
    const std::size_t before = corked_.size();
    try {
        // (An empty view's data may be null: memcpy's undefined then.)
        if (!a.empty()) corked_.append(c_.owner.buffers(), a.data(), a.size());
        if (!b.empty()) corked_.append(c_.owner.buffers(), b.data(), b.size());
    } catch (...) {
        corked_.truncate(before);  // never half a frame in the cork
        throw;
    }
    // Should the plugin wait on something else before its next send or next(), the cork
    // goes out once the thread has run what is queued.
    if (before == 0) defer_write();
}

void websocket_session::defer_write() {
    events_->defer(
        [](void* self) noexcept {
            auto& s = *static_cast<websocket_session*>(self);
            if (s.c_.phase != phase::writing) s.write_corked_now();
        },
        this);
}

void websocket_session::hold_upgrade_reply(std::string_view bytes) {
    if (!bytes.empty()) corked_.append(c_.owner.buffers(), bytes.data(), bytes.size());
}

void websocket_session::serving_began() noexcept {
    if (corked_.empty()) return;
    try {
        defer_write();
    } catch (...) {
        // Out of memory for the post: now, then, and the plugin's subscriptions race it.
        if (c_.phase != phase::writing) write_corked_now();
    }
}

websocket_session::frame_progress websocket_session::frame_written_now(ws_opcode opcode,
                                                                       std::string_view payload) {
    std::array<char, ws_max_header_bytes> header;
    const std::size_t header_size = write_frame_header(header, opcode, payload.size());
    const std::size_t total = header_size + payload.size();
    const auto scratch = c_.owner.scratch();
    if (corked_.size() + total > cork_bytes || total > scratch.size()) return frame_progress::none;
    if (more_published()) {
        cork({header.data(), header_size}, payload);
        return frame_progress::sent;
    }
    if (!corked_.empty()) {
        cork({header.data(), header_size}, payload);  // the cork and this frame in one write
        if (!cork_written_now()) return frame_progress::cork_left;
    } else if (!write_failed_) {
        // One write of header and payload, without waiting when the socket takes it: the
        // case of every message but those of a client that does not read.
        c_.begin_phase(phase::writing);
        std::memcpy(scratch.data(), header.data(), header_size);
        if (!payload.empty())  // (an empty view's data may be null: memcpy's undefined then)
            std::memcpy(scratch.data() + header_size, payload.data(), payload.size());
        boost::system::error_code ec;
        std::size_t written = 0;
        const bool wait = c_.wire.write_now_or_wait({scratch.data(), total}, written, ec);
        wrote(written);
        if (wait) {
            // The scratch buffer is the shard's: what is left waits in the cork.
            corked_.append(c_.owner.buffers(), scratch.data() + written, total - written);
            return frame_progress::cork_left;
        }
        if (ec) write_failed_ = true;
        c_.begin_phase(phase::handling);
    }
    ensure_writable();
    return frame_progress::sent;
}

task<void> websocket_session::finish_frame(frame_progress progress, ws_opcode opcode,
                                           std::string_view payload) {
    switch (progress) {
        case frame_progress::sent:
            co_return;
        case frame_progress::cork_left:
            co_await write_cork_rest();
            break;
        case frame_progress::none: {
            // Larger than the cork takes: the cork first, then header and payload as they
            // lie, waiting as the socket asks.
            if (!corked_.empty() && !cork_written_now()) co_await write_cork_rest();
            if (write_failed_) break;
            std::array<char, ws_max_header_bytes> header;
            const std::size_t header_size = write_frame_header(header, opcode, payload.size());
            c_.begin_phase(phase::writing);
            auto [head_ec, n] =
                co_await c_.wire.async_write(asio::buffer(header.data(), header_size), as_tuple);
            wrote(n);
            if (!head_ec) {
                auto [body_ec, m] = co_await c_.wire.async_write(asio::buffer(payload), as_tuple);
                wrote(m);
                if (body_ec) write_failed_ = true;
            } else {
                write_failed_ = true;
            }
            c_.begin_phase(phase::handling);
            break;
        }
    }
    ensure_writable();
}

bool websocket_session::cork_close(std::uint16_t code, std::string_view reason) {
    if (close_sent_ || write_failed_) return false;
    close_sent_ = true;
    if (!close_code_) close_code_ = code;
    cork(close_frame(code, reason).view());
    return true;
}

task<void> websocket_session::send_close(std::uint16_t code, std::string_view reason) {
    if (cork_close(code, reason) && !cork_written_now()) co_await write_cork_rest();
}

websocket_session::arrival websocket_session::read_arrived() {
    if (!events_->maybe_readable()) return arrival::nothing;
    const auto scratch = c_.owner.scratch();
    boost::system::error_code ec;
    const std::size_t n = c_.wire.read_now(scratch, ec);
    if (!ec) {
        c_.input.append(c_.owner.buffers(), scratch.data(), n);
        bytes_in_ += n;
        if (auto* t = c_.via->traffic) t->bytes_in += n;
        return arrival::bytes;
    }
    if (ec != asio::error::would_block) return arrival::gone;
    events_->watch([this](auto readable) {
        c_.wire.async_wait_next_bytes(c_.owner.readiness(), std::move(readable));
    });
    return arrival::nothing;
}

const topic_message* websocket_session::take_published() noexcept {
    return hub ? hub->board_of(*this).take(*this) : nullptr;
}

websocket_session::step websocket_session::deliver(const topic_message& m) noexcept {
    client_turn_ = true;
    event_ = {1, m.type(), 0, m.payload(), m.topic()};
    c_.begin_phase(phase::handling);
    if (auto* t = c_.via->traffic) ++t->topic_deliveries;
    return step::ready;
}

task<void> websocket_session::send(std::string_view data, message_type type) {
    ensure_open();
    if (type == message_type::text && !valid_utf8(data)) {
        throw std::invalid_argument(
            "session::send: a text message must be UTF-8 (send binary "
            "with message_type::binary)");
    }
    const ws_opcode opcode = type == message_type::binary ? ws_opcode::binary : ws_opcode::text;
    if (const auto p = frame_written_now(opcode, data); p != frame_progress::sent)
        co_await finish_frame(p, opcode, data);
    if (auto* t = c_.via->traffic) ++t->websocket_messages_out;
}

task<void> websocket_session::forward(const event& published) {
    if (!published.published()) {
        throw std::invalid_argument(
            "session::forward: the event is not a published message; send() a client's "
            "message instead");
    }
    ensure_open();
    // Published text was checked as UTF-8 when published (topics::publish).
    const ws_opcode opcode =
        published.type() == message_type::binary ? ws_opcode::binary : ws_opcode::text;
    if (const auto p = frame_written_now(opcode, published.data()); p != frame_progress::sent)
        co_await finish_frame(p, opcode, published.data());
    if (auto* t = c_.via->traffic) ++t->websocket_messages_out;
}

task<void> websocket_session::close(std::uint16_t code, std::string_view reason) {
    if (!ws_close_code_allowed(code) || code == ws_close_code::no_status) {
        throw std::invalid_argument("session::close: " + std::to_string(code) +
                                    " is not a close code to send; use 1000 (normal), 1001, "
                                    "1003, 1007-1014 or 3000-4999");
    }
    if (reason.size() > ws_max_close_reason || !valid_utf8(reason)) {
        throw std::invalid_argument(
            "session::close: the reason must be UTF-8 of at most 123 bytes");
    }
    ensure_open();
    co_await send_close(code, reason);
    server_code_ = code;  // next() returns the end with it
}

task<event> websocket_session::next() {
    if (ended_) co_return event{&event_};  // the end, again
    // The plugin is done with the event returned last.
    if (consume_ > 0) c_.input.consume(std::exchange(consume_, 0));
    if (hub) hub->board_of(*this).release(*this);
    // Only the waits are here: an idle session holds this frame, so it stays small, and
    // the work between them is advance()'s.
    bool need_bytes = false;  // what is buffered is an incomplete frame
    for (;;) {
        switch (advance(need_bytes)) {
            case step::ready:
                co_return event{&event_};
            case step::write:
                if (!cork_written_now()) co_await write_cork_rest();
                break;
            case step::wait: {
                waiting = true;
                c_.in_read_wait = true;
                auto [ec] = co_await events_->async_wait(as_tuple);
                waiting = false;
                c_.in_read_wait = false;
                events_->take_woken();
                if (ec && !(c_.closing || c_.via->closing)) {
                    // Cancelled: a drain that ran out, or the plugin's request_timeout_ms.
                    throw boost::system::system_error(
                        ec, "waiting for the WebSocket client " + c_.peer);
                }
                break;
            }
        }
    }
}

websocket_session::step websocket_session::advance(bool& need_bytes) {
    for (;;) {
        if (write_failed_ && !corked_.empty()) corked_.release(c_.owner.buffers());  // lost
        if (close_received_) {
            // The client's close (its echo is written, or could not be).
            set_closed(close_code_, close_reason_);
            return step::ready;
        }
        if (write_failed_) {
            set_closed(1006, "the client stopped taking data");
            return step::ready;
        }
        if (!server_code_) {
            if (cut_off_) {
                server_code_ = ws_close_code::policy_violation;
                server_reason_ = "fell more than max_queued_messages behind on its topics";
            } else if (c_.closing || c_.via->closing) {
                server_code_ = ws_close_code::going_away;
                server_reason_ = "the server is going away";
            }
        }
        if (server_code_) {
            if (cork_close(server_code_, server_reason_)) return step::write;
            set_closed(server_code_, server_reason_);
            return step::ready;
        }
        // When a message of each kind is ready, they take turns.
        if (!client_turn_) {
            if (const topic_message* m = take_published()) return deliver(*m);
        }
        if (!c_.input.empty() && !need_bytes && !refused_) {
            const ws_frame f =
                decoder_.next(c_.input.bytes(), c_.via->spec.websocket.max_message_bytes);
            switch (f.what) {
                case ws_frame::kind::message:
                    client_turn_ = false;
                    consume_ = static_cast<std::uint32_t>(f.consumed);
                    event_ = {
                        0,
                        f.opcode == ws_opcode::binary ? message_type::binary : message_type::text,
                        0,
                        f.payload,
                        {}};
                    c_.begin_phase(phase::handling);
                    if (auto* t = c_.via->traffic) ++t->websocket_messages_in;
                    return step::ready;
                case ws_frame::kind::control:
                    c_.begin_phase(phase::handling);  // any frame is a sign of life
                    if (f.opcode == ws_opcode::close) {
                        close_received_ = true;
                        if (!close_code_) close_code_ = f.close_code;
                        // The reason stays where it lies, for the end event next() returns:
                        // the frame is dropped with the event (consume_), as a message is.
                        close_reason_ = f.payload;
                        consume_ = static_cast<std::uint32_t>(f.consumed);
                        // The echo (RFC 6455 §5.5.1), then the end.
                        if (cork_close(f.close_code, {})) return step::write;
                        continue;
                    }
                    // A pong joins the cork: out before any wait, or with the next send.
                    if (f.opcode == ws_opcode::ping && !close_sent_ && !write_failed_)
                        cork(pong_frame(f.payload).view());
                    c_.input.consume(f.consumed);
                    continue;
                case ws_frame::kind::refused:
                    log::debug(
                        "listener " + c_.via->spec.name + ": WebSocket client " + c_.peer +
                            " closed with " + std::to_string(f.close_code) + ": " + f.reason,
                        {log::tag("listener", c_.via->spec.name), log::tag("peer", c_.peer)});
                    refused_ = true;
                    server_code_ = f.close_code;
                    server_reason_ = f.reason;
                    continue;
                case ws_frame::kind::incomplete:
                    c_.input.truncate(f.kept);
                    need_bytes = true;
                    break;
            }
        }
        if (const topic_message* m = take_published()) return deliver(*m);
        // Nothing more to deliver now: what the plugin sent goes out before any wait.
        if (!corked_.empty()) return step::write;
        // Nothing whole: read what has arrived, or wait for it (or for a published message).
        const bool mid_frame = !c_.input.empty() || decoder_.in_message();
        const phase quiet = mid_frame ? phase::receiving : phase::waiting;
        if (c_.phase != quiet) c_.begin_phase(quiet);
        const arrival got = read_arrived();
        if (got == arrival::bytes) {
            need_bytes = false;
            continue;
        }
        if (got == arrival::gone) {
            write_failed_ = true;  // the connection is gone: nothing more goes out
            set_closed(1006, "the client went away without a close");
            return step::ready;
        }
        c_.input.release_if_empty(c_.owner.buffers());  // an idle session holds no buffer
        return step::wait;
    }
}

task<void> websocket_session::finish(std::uint16_t code, std::string_view reason) {
    try {
        if (!close_sent_) co_await send_close(code, reason);
        if (close_received_ || write_failed_ || refused_) co_return;
        // The client answers our close with its own; until then (at most the sweeper's
        // lingering time), its frames are read and dropped, so closing does not reset
        // the connection under what it still reads.
        c_.begin_phase(phase::lingering);
        if (consume_ > 0) c_.input.consume(std::exchange(consume_, 0));
        for (int rounds = 0; rounds < 1024 && !c_.closing; ++rounds) {
            if (!c_.input.empty()) {
                const ws_frame f =
                    decoder_.next(c_.input.bytes(), c_.via->spec.websocket.max_message_bytes);
                if (f.what == ws_frame::kind::refused) co_return;
                if (f.what == ws_frame::kind::control && f.opcode == ws_opcode::close) {
                    close_received_ = true;
                    co_return;
                }
                if (f.what == ws_frame::kind::incomplete) {
                    c_.input.truncate(f.kept);
                } else {
                    c_.input.consume(f.consumed);
                    continue;
                }
            }
            const arrival got = read_arrived();
            if (got == arrival::bytes) continue;
            if (got == arrival::gone) co_return;
            c_.in_read_wait = true;
            auto [ec] = co_await events_->async_wait(as_tuple);
            c_.in_read_wait = false;
            if (ec) co_return;
        }
    } catch (...) {
        // Out of memory for the client's last bytes: it is closed all the same.
    }
}

}  // namespace plugd
