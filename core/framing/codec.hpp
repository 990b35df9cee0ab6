// codec: what a framing is to the connection that serves it.
//
// A connection holds bytes and a transport; a codec says what those bytes mean. The serving
// loop (serving/connection.cpp) is the same for every framing: read what has arrived →
// decode → dispatch to the plugin → encode the reply → write. Everything that differs
// between line, oneshot, HTTP and raw is a codec's answer to one of the questions below,
// so adding a framing is a file here and a line in framings.hpp; docs/architecture.md
// walks through one.
//
// A codec is a plain class, not a base class: serve() is a template over it, so the
// per-request calls are inlined (a virtual call per step was measurable on pipelined
// requests). Its object lives in the serving coroutine's frame: state it keeps between
// requests (HTTP's reused strings) is freed when an idle connection parks.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <plugd/reply.hpp>
#include <plugd/request.hpp>

namespace plugd {

/// What a codec found at the start of a connection's buffered bytes.
struct frame {
    enum class kind : std::uint8_t {
        incomplete,  ///< no whole request yet: read more (answer_early() may say something)
        request,     ///< a whole request: `message` (and `http`), `consumed` bytes of input
        refused,     ///< input the framing cannot accept: send encode_refusal(), then close
        /// The connection stops being a series of requests: from here the plugin's
        /// handler::serve owns it as a byte stream (raw: at once; WebSocket's upgrade will
        /// switch after its request's reply).
        switch_protocol,
    };
    kind what = kind::incomplete;
    std::size_t consumed = 0;
    std::string_view message;                 ///< what request::message() returns
    const http_request_view* http = nullptr;  ///< what request::http() returns
    int status = 0;                           ///< refused: the HTTP status it maps to
    const char* reason = "";                  ///< refused: why, for the client and the log

    static frame whole_request(std::size_t consumed, std::string_view message,
                               const http_request_view* http = nullptr) noexcept {
        frame f;
        f.what = kind::request;
        f.consumed = consumed;
        f.message = message;
        f.http = http;
        return f;
    }
    static frame refusal(int status, const char* reason) noexcept {
        frame f;
        f.what = kind::refused;
        f.status = status;
        f.reason = reason;
        return f;
    }
    static frame protocol_switch(std::size_t consumed = 0) noexcept {
        frame f;
        f.what = kind::switch_protocol;
        f.consumed = consumed;
        return f;
    }
};

/// The questions a serving loop asks a framing. `max` is the listener's max_request_bytes.
template <class C>
concept codec = requires(C& c, std::string_view input, std::size_t max, bool eof, std::string& out,
                         int status, bool closing, const frame& f) {
    /// The framing's name in server.json.
    { C::name } -> std::convertible_to<std::string_view>;
    /// True when the connection is handed over before the client sends anything (the
    /// plugin may speak first): decode() is then called with no input.
    { C::decodes_before_input } -> std::convertible_to<bool>;
    /// True when a request, once its first byte has arrived, must arrive whole within
    /// request_timeout_ms (the sweeper times the `receiving` phase and then calls
    /// encode_too_slow()); otherwise a partial request is timed as idle.
    { C::times_partial_requests } -> std::convertible_to<bool>;
    /// True when replies carry a status that the access log reports as the outcome.
    { C::replies_have_status } -> std::convertible_to<bool>;
    /// How many bytes may be buffered while looking for one request; more is refused.
    { C::max_buffered(max) } -> std::same_as<std::size_t>;
    /// The next request at the start of `input`. `eof`: the client has half-closed, so no
    /// more bytes come. Views in the frame stay valid until the next decode().
    { c.decode(input, max, eof) } -> std::same_as<frame>;
    /// After an incomplete decode: bytes to send before the request is whole (HTTP's
    /// `100 Continue`), appended to `out` once per request.
    { c.answer_early(out) } -> std::same_as<void>;
    /// Where the handler of the request just decoded writes (appends) its reply: `out`
    /// itself, or a buffer of the codec's that encode_reply() frames into `out`.
    { c.reply_buffer(out) } -> std::same_as<std::string&>;
    /// The reply's head the handler may fill (HTTP status and fields), or null.
    { c.reply_head() } -> std::same_as<http_reply_head*>;
    /// Completes the reply in `out` with `status` (the handler's, or a failure's, whose
    /// text has replaced the reply's). `closing`: the connection closes after it (a stop,
    /// a drain, a failure). Returns whether the connection may serve another request.
    { c.encode_reply(out, status, closing) } -> std::same_as<bool>;
    /// Appends the answer to a refused frame.
    { C::encode_refusal(out, f) } -> std::same_as<void>;
    /// Appends what a client that did not send a whole request in time gets before the
    /// connection closes; nothing if it just closes.
    { C::encode_too_slow(out) } -> std::same_as<void>;
};

/// The answers of a codec whose replies are bytes as the handler wrote them (line, oneshot,
/// raw): nothing to say early or to a slow client, no HTTP head, the output itself as the
/// reply buffer. Such a codec derives from it and adds its own decoding and framing.
struct plain_replies {
    void answer_early(std::string&) const noexcept {}
    std::string& reply_buffer(std::string& out) const noexcept { return out; }
    http_reply_head* reply_head() const noexcept { return nullptr; }
    static void encode_too_slow(std::string&) noexcept {}
};

}  // namespace plugd
