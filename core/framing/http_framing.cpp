// HTTP/1.1 framing over Beast's basic_parser: the parser reports what it finds through
// virtual functions, which keep views into the caller's bytes; nothing is allocated.
#include "framing/http_framing.hpp"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace plugd {
namespace {

namespace http = boost::beast::http;
using boost::beast::string_view;
using boost::system::error_code;

std::string_view std_view(string_view s) noexcept {
    return {s.data(), s.size()};
}

// What RFC 9112 makes a server refuse and Beast's parser leaves to its user (Beast itself
// refuses a malformed start line or field, whitespace before a field's colon, differing
// Content-Length values, and Content-Length with a chunked Transfer-Encoding).
struct framing_refusal {
    int status = 0;  ///< 0: none
    const char* reason = "";
};

// The transfer codings of every Transfer-Encoding field of a request, in order (§6.1: the
// fields' lists combine). Only "chunked" is understood.
struct transfer_codings {
    bool present = false;
    bool last_chunked = false;
    bool chunked_twice = false;
    bool other = false;  ///< a coding plugd cannot decode (gzip, identity, ...)
    bool malformed = false;

    void add(std::string_view list) noexcept {
        present = true;
        while (!list.empty()) {
            const std::size_t comma = list.find(',');
            std::string_view coding = list.substr(0, comma);
            list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
            coding = coding.substr(0, coding.find(';'));  // parameters
            while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
                coding.remove_prefix(1);
            while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
                coding.remove_suffix(1);
            if (coding.empty()) continue;  // an empty list element is allowed and ignored
            if (http_iequals(coding, "chunked")) {
                chunked_twice = chunked_twice || seen_chunked_;
                seen_chunked_ = last_chunked = true;
            } else {
                other = true;
                last_chunked = false;
            }
        }
        malformed = malformed || (!seen_chunked_ && !other);  // nothing but commas
    }

  private:
    bool seen_chunked_ = false;
};

// RFC 3986's uri-host [":" port]: letters, digits, "-._~", percent-encodings, sub-delims,
// and an IPv6 literal's brackets and colons.
bool valid_host(std::string_view host) noexcept {
    for (const char c : host) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && std::string_view{"-._~%!$&'()*+,;=:[]"}.find(c) == std::string_view::npos)
            return false;
    }
    return true;
}

class request_parser final : public http::basic_parser<true> {
  public:
    request_parser(std::string_view input, std::string& chunked)
        : input_{input}, chunked_{chunked} {
        chunked_.clear();
    }

    std::string_view method, target, body;
    int version = 11;
    bool expect_continue = false;
    bool in_chunks = false;
    framing_refusal refusal;
    websocket_upgrade_fields websocket;

  private:
    void on_request_impl(http::verb, string_view method_text, string_view target_text, int v,
                         error_code&) override {
        method = std_view(method_text);
        target = std_view(target_text);
        version = v;
    }
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(http::field name, string_view name_text, string_view value,
                       error_code& ec) override {
        // Beast unfolds an obs-fold into a buffer of its own (RFC 9112 §5.2 allows that or a
        // 400): refuse it, as a proxy before us may have read the field differently. A fold
        // right after the colon leaves the value in the input, past a line end.
        const char* const end = input_.data() + input_.size();
        const char* const after_name = name_text.data() + name_text.size();
        const bool moved = value.data() < input_.data() || value.data() > end;
        const bool leading_fold =
            !moved && value.data() > after_name &&
            std::string_view{after_name, static_cast<std::size_t>(value.data() - after_name)}
                    .find_first_of("\r\n") != std::string_view::npos;
        if (moved || leading_fold) {
            refusal = {400, "obsolete line folding in a header field"};
            ec = http::error::bad_value;
            return;
        }
        switch (name) {
            case http::field::expect:
                if (http_iequals(std_view(value), "100-continue")) expect_continue = true;
                break;
            case http::field::host:
                ++hosts_;
                if (!valid_host(std_view(value))) {  // §3.2: an invalid Host is a 400
                    refusal = {400, "invalid Host header field"};
                    ec = http::error::bad_value;
                }
                break;
            case http::field::content_length:
                has_length_ = true;
                break;
            case http::field::transfer_encoding:
                codings_.add(std_view(value));
                break;
            case http::field::upgrade:
                websocket.add_upgrade(std_view(value));
                break;
            case http::field::connection:
                websocket.add_connection(std_view(value));
                break;
            case http::field::sec_websocket_key:
                websocket.add_key(std_view(value));
                break;
            case http::field::sec_websocket_version:
                websocket.add_version(std_view(value));
                break;
            default:
                break;
        }
    }
    // The head is whole: refuse what would let a request's end be read two ways (request
    // smuggling: a front proxy and plugd disagreeing on where the next request starts).
    void on_header_impl(error_code& ec) override {
        const auto refuse = [&](int status, const char* reason) {
            refusal = {status, reason};
            ec = http::error::bad_value;
        };
        if (codings_.present) {
            // §6.1: a 1.0 message with Transfer-Encoding has faulty framing.
            if (version < 11) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
            // §6.3: both say where the body ends; which one a proxy before us believed is
            // unknowable, so neither can be trusted.
            if (has_length_) return refuse(400, "both Transfer-Encoding and Content-Length");
            if (codings_.malformed || codings_.chunked_twice)
                return refuse(400, "malformed Transfer-Encoding");
            // §6.3: a request body's length is known only when chunked is the last coding.
            if (!codings_.last_chunked)
                return refuse(400, "Transfer-Encoding does not end in chunked");
            // §6.1: a coding the server does not understand (the body would be handed over
            // still encoded).
            if (codings_.other) return refuse(501, "transfer coding not implemented");
        }
        // §3.2: an HTTP/1.1 request has exactly one Host.
        if (version >= 11 && hosts_ == 0) return refuse(400, "no Host header field");
        if (hosts_ > 1) return refuse(400, "more than one Host header field");
    }
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view piece, error_code&) override {
        // One buffer holds the whole request, so a Content-Length body is one piece; a
        // second one would only come from an input split we never make.
        if (body.empty()) {
            body = std_view(piece);
        } else {
            body = {body.data(), body.size() + piece.size()};
        }
        return piece.size();
    }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {
        in_chunks = true;
    }
    std::size_t on_chunk_body_impl(std::uint64_t, string_view piece, error_code&) override {
        chunked_.append(piece.data(), piece.size());
        return piece.size();
    }
    void on_finish_impl(error_code&) override {
        if (in_chunks) body = chunked_;
    }

    std::string_view input_;
    std::string& chunked_;
    int hosts_ = 0;
    bool has_length_ = false;
    transfer_codings codings_;
};

http_frame failed(int status, const char* reason) {
    http_frame f;
    f.what = http_frame::kind::error;
    f.status = status;
    f.reason = reason;
    return f;
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

bool http_iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

http_frame next_http_request(std::string_view input, std::size_t max_request_bytes,
                             std::string& chunked_body) {
    request_parser p{input, chunked_body};
    p.eager(true);
    p.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(max_request_bytes, UINT32_MAX)));
    p.body_limit(max_request_bytes);
    std::size_t used = 0;
    error_code ec;
    while (!p.is_done()) {
        const std::size_t n =
            p.put(boost::asio::const_buffer{input.data() + used, input.size() - used}, ec);
        used += n;
        if (ec == http::error::need_more || (!ec && n == 0)) {
            // Everything buffered and still not a whole request: the reader stops at the
            // limit, so more bytes than that mean a request too large to accept.
            if (input.size() >= max_request_bytes + 2) {
                return p.is_header_done() ? failed(413, "request body too large")
                                          : failed(431, "request header too large");
            }
            http_frame f;
            f.wants_continue = p.is_header_done() && p.expect_continue;
            return f;
        }
        if (p.refusal.status != 0) return failed(p.refusal.status, p.refusal.reason);
        if (ec == http::error::header_limit) return failed(431, "request header too large");
        if (ec == http::error::body_limit) return failed(413, "request body too large");
        if (ec) return failed(400, "malformed request");
    }
    if (used > max_request_bytes) return failed(413, "request too large");
    http_frame f;
    f.what = http_frame::kind::request;
    f.consumed = used;
    f.method = p.method;
    f.target = p.target;
    f.body = p.body;
    f.head = input.substr(0, input.find("\r\n\r\n"));
    f.keep_alive = p.keep_alive();
    f.http10 = p.version < 11;
    if (p.websocket.upgrade_websocket)
        f.websocket = check_websocket_upgrade(f.method, !f.http10, p.websocket);
    return f;
}

std::string_view http_message(const http_frame& frame, std::string& decoded) {
    if (!frame.body.empty()) return frame.body;
    std::string_view t = frame.target;
    if (t.starts_with('/')) t.remove_prefix(1);
    if (t.find('%') == std::string_view::npos) return t;
    decoded.clear();
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '%' && i + 2 < t.size() && hex_value(t[i + 1]) >= 0 &&
            hex_value(t[i + 2]) >= 0) {
            decoded += static_cast<char>(hex_value(t[i + 1]) * 16 + hex_value(t[i + 2]));
            i += 2;
        } else {
            decoded += t[i];
        }
    }
    return decoded;
}

std::string_view http_reason(int status) noexcept {
    namespace http = boost::beast::http;
    if (status == 413) return "Content Too Large";  // RFC 9110's name; Beast has the old one
    const auto known = http::int_to_status(static_cast<unsigned>(status));
    if (known == http::status::unknown) return "Unknown";
    const auto reason = http::obsolete_reason(known);
    return {reason.data(), reason.size()};
}

void append_http_response(std::string& out, int status, std::string_view body, bool close,
                          bool http10, std::string_view fields, bool head_only) {
    char digits[24];
    const auto append_number = [&](auto n) {
        out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
    };
    out += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(status);
    out += ' ';
    out += http_reason(status);
    out += "\r\n";
    out += fields;
    bool typed = false;
    for (std::size_t at = 0; at < fields.size() && !typed;) {
        typed = http_iequals(fields.substr(at, 13), "content-type:");
        const auto eol = fields.find('\n', at);
        at = eol == std::string_view::npos ? fields.size() : eol + 1;
    }
    const bool bodiless = status < 200 || status == 204 || status == 304;
    if (!typed && !bodiless) out += "Content-Type: text/plain\r\n";
    if (!bodiless) {
        out += "Content-Length: ";
        append_number(body.size());
        out += "\r\n";
    }
    out +=
        close ? "Connection: close\r\n\r\n" : (http10 ? "Connection: keep-alive\r\n\r\n" : "\r\n");
    if (!bodiless && !head_only) out += body;
}

frame http_codec::decode(std::string_view input, std::size_t max, bool) {
    last_ = next_http_request(input, max, chunked_);
    switch (last_.what) {
        case http_frame::kind::incomplete:
            return {};
        case http_frame::kind::error:
            return frame::refusal(last_.status, last_.reason);
        case http_frame::kind::request:
            break;
    }
    continue_sent_ = false;
    body_.clear();
    fields_.clear();
    head_.status = 200;
    view_ = {last_.method, last_.target, last_.body, last_.head};
    return frame::whole_request(last_.consumed, http_message(last_, decoded_), &view_);
}

void http_codec::answer_early(std::string& out) {
    if (!last_.wants_continue || continue_sent_) return;
    out += "HTTP/1.1 100 Continue\r\n\r\n";
    continue_sent_ = true;
}

bool http_codec::encode_reply(std::string& out, int status, bool closing) {
    const bool close = closing || !last_.keep_alive;
    // A HEAD request's answer is a GET's without its content (RFC 9110 §9.3.2).
    append_http_response(out, status, body_, close, last_.http10, fields_, last_.method == "HEAD");
    return !close;
}

void http_codec::encode_refusal(std::string& out, const frame& f) {
    append_http_response(out, f.status, f.reason, true, false);
}

void http_codec::encode_too_slow(std::string& out) {
    append_http_response(out, 408, "request not received in time", true, false);
}

}  // namespace plugd
