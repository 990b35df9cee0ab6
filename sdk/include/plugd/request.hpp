// plugd::request: a read-only view of one framed request.
#pragma once

#include <string_view>

namespace plugd {

/// What an `http` listener knows of a request beyond its message. Filled by the core;
/// read it through `request`. Since SDK 1.2.
struct http_request_view {
    std::string_view method;  ///< "GET", "POST", ...
    std::string_view target;  ///< as sent: "/users/7?full=1"
    std::string_view body;    ///< chunked bodies joined; empty when there is none
    std::string_view head;    ///< the request line and header fields, as received
};

/// One request, as framed by the listener (a line without its `\n`/`\r\n`, one read in
/// `oneshot` framing, or an HTTP request in `http` framing).
///
/// Lifetime: the views stay valid until the `handle` call that received the request
/// completes. Copy what you need to keep longer.
class request {
  public:
    request(std::string_view message, std::string_view peer, std::string_view listener,
            const http_request_view* http = nullptr) noexcept
        : message_{message}, peer_{peer}, listener_{listener}, http_{http} {}

    /// The request bytes, not necessarily valid UTF-8, possibly empty. On an `http`
    /// listener: the body when there is one, otherwise the target without its leading
    /// `/`, URL-decoded (so a plugin written for `line` framing serves HTTP unchanged).
    std::string_view message() const noexcept { return message_; }
    /// The client's address as `ip:port` (IPv6 as `[ip]:port`).
    std::string_view peer() const noexcept { return peer_; }
    /// The name of the listener (server.json `/listeners/N/name`) that accepted the client.
    std::string_view listener() const noexcept { return listener_; }

    // ---- since SDK 1.2 (appended: the members above keep their places) ----

    /// True on an `http` listener; the accessors below are empty elsewhere.
    bool is_http() const noexcept { return http_ != nullptr; }
    std::string_view method() const noexcept { return http_ ? http_->method : std::string_view{}; }
    /// The target as sent, not decoded: "/users/7?full=1".
    std::string_view target() const noexcept { return http_ ? http_->target : std::string_view{}; }
    std::string_view body() const noexcept { return http_ ? http_->body : std::string_view{}; }
    /// The value of header field `name` (compared without case), without surrounding
    /// spaces; the first one if it is repeated; empty when absent.
    std::string_view header(std::string_view name) const noexcept {
        if (!http_) return {};
        std::string_view rest = http_->head;
        const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
        for (auto eol = rest.find('\n'); eol != std::string_view::npos; eol = rest.find('\n')) {
            rest.remove_prefix(eol + 1);  // the first line is the request line
            std::string_view field = rest.substr(0, rest.find('\n'));
            if (field.ends_with('\r')) field.remove_suffix(1);
            const auto colon = field.find(':');
            if (colon != name.size()) continue;
            bool same = true;
            for (std::size_t i = 0; i < colon && same; ++i)
                same = lower(field[i]) == lower(name[i]);
            if (!same) continue;
            std::string_view value = field.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
                value.remove_prefix(1);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
                value.remove_suffix(1);
            return value;
        }
        return {};
    }

  private:
    std::string_view message_;
    std::string_view peer_;
    std::string_view listener_;
    const http_request_view* http_;
};

}  // namespace plugd
