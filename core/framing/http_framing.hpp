// HTTP/1.1 framing: finds the next complete request in buffered bytes (Boost.Beast's
// parser), and writes responses. No parser state between calls: a connection holds no
// parser while it waits, and the request's views point into the bytes it already keeps.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "framing/codec.hpp"
#include "framing/websocket_handshake.hpp"

namespace plugd {

/// What the bytes buffered so far hold.
struct http_frame {
    enum class kind {
        incomplete,  ///< no whole request yet; read more (maybe after `100 Continue`)
        request,     ///< a whole request; drop `consumed` bytes after answering it
        error,       ///< answer `status` with `reason` as the body, then close
    };
    kind what = kind::incomplete;
    std::size_t consumed = 0;  ///< bytes of input the request took
    std::string_view method;
    std::string_view target;  ///< as sent, e.g. "/world?x=1"
    /// The body: a view into the input, or into `chunked_body` when the body came in
    /// chunks (its pieces then had to be joined).
    std::string_view body;
    std::string_view head;    ///< the request line and header fields, without the blank line
    bool keep_alive = false;  ///< HTTP/1.1 unless `Connection: close`; 1.0 only if asked
    bool http10 = false;      ///< answer as HTTP/1.0 would be understood
    /// The head is complete and asks `Expect: 100-continue` while the body is not there.
    bool wants_continue = false;
    int status = 0;  ///< for kind::error: 400, 413, 431 or 501
    const char* reason = "";
    /// For kind::request: whether it asks to become a WebSocket, and if so whether it asks
    /// well (a route whose plugin serves sessions answers by it; others ignore it).
    websocket_upgrade websocket;
};

/// Parses the start of `input` as one request of at most `max_request_bytes` bytes, head
/// and body together. `chunked_body` receives a chunked body (the caller reuses it).
http_frame next_http_request(std::string_view input, std::size_t max_request_bytes,
                             std::string& chunked_body);

/// Whether `a` and `b` are equal ignoring ASCII case, as HTTP field names, transfer codings
/// and authentication schemes compare (RFC 9110 §5.1, §11.1).
bool http_iequals(std::string_view a, std::string_view b) noexcept;

/// What a plugin written for line framing sees as its message: the body when there is
/// one, otherwise the target without its leading '/', URL-decoded into `decoded`.
std::string_view http_message(const http_frame& frame, std::string& decoded);

/// Appends a whole response to `out`: status line, `fields` ("Name: value\r\n" lines),
/// `Content-Type: text/plain` unless `fields` has one, `Content-Length`, `Connection: close`
/// when `close` (or `keep-alive` for an HTTP/1.0 client that keeps it), then `body`. A
/// status without a body (1xx, 204, 304) gets neither length nor body; `head_only` (the
/// answer to HEAD) gets the length of `body` but not the body.
void append_http_response(std::string& out, int status, std::string_view body, bool close,
                          bool http10, std::string_view fields = {}, bool head_only = false);

/// The reason phrase plugd sends with `status`.
std::string_view http_reason(int status) noexcept;

/// A connection's reusable buffers for routing its requests (routing/): kept by its codec so
/// that a connection that parks frees them with the rest of its request state.
struct route_scratch {
    std::string path;  ///< the normalised target of the request being routed
    std::string host;  ///< its host, when it had to be lowered
};

/// The HTTP framing's codec (see codec.hpp): keep-alive and pipelining, `100 Continue`,
/// 408 for a request not received whole in time, the handler's reply as the body of a
/// response with its status and fields. The admin endpoint and plugd::testing's call_http
/// frame requests with it too.
class http_codec {
  public:
    static constexpr std::string_view name = "http";
    static constexpr bool decodes_before_input = false;
    static constexpr bool times_partial_requests = true;
    static constexpr bool replies_have_status = true;
    /// The largest request and two bytes: one more than that is a request too large.
    static std::size_t max_buffered(std::size_t max) noexcept { return max + 2; }

    frame decode(std::string_view input, std::size_t max, bool eof);
    void answer_early(std::string& out);
    /// Cleared for each request: the handler writes the body here.
    std::string& reply_buffer(std::string&) noexcept { return body_; }
    http_reply_head* reply_head() noexcept { return &head_; }
    bool encode_reply(std::string& out, int status, bool closing);
    static void encode_refusal(std::string& out, const frame& f);
    static void encode_too_slow(std::string& out);

    /// What decode() knows of the request it returned that a frame does not carry.
    const http_frame& last() const noexcept { return last_; }
    /// The request decode() returned asks to become a WebSocket (well or badly); null when
    /// it does not.
    const websocket_upgrade* websocket() const noexcept {
        return last_.websocket.what == websocket_upgrade::kind::none ? nullptr : &last_.websocket;
    }
    /// Buffers for routing the requests it decodes, on a listener with routes.
    route_scratch& routing() noexcept { return routing_; }

  private:
    http_frame last_;
    http_request_view view_;
    std::string chunked_;  ///< a chunked body, joined
    std::string decoded_;  ///< a target, URL-decoded
    std::string body_;
    std::string fields_;
    http_reply_head head_{200, &fields_};
    route_scratch routing_;
    bool continue_sent_ = false;
};
static_assert(codec<http_codec>);

}  // namespace plugd
