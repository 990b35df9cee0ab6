// plugd::request: a read-only view of one framed request.
#pragma once

#include <string_view>

namespace plugd {

namespace detail {

/// Values filters attach to a request for the plugins after them (request::attach).
/// Implemented by the core: a plugin only calls it. Since SDK 1.4.
class request_attributes {
  public:
    virtual void set(std::string_view key, std::string_view value) = 0;
    virtual std::string_view get(std::string_view key) const noexcept = 0;

  protected:
    ~request_attributes() = default;
};

/// What the core knows of a request beyond its framing: filled by the core, read through
/// `request`. Members are only ever appended. Since SDK 1.4.
struct request_extras {
    std::string_view route;      ///< the matched route's name, or its index ("0", "1", ...)
    std::string_view path_rest;  ///< the path after the route's matched prefix
    request_attributes* attributes = nullptr;
    std::string_view client_subject;  ///< the verified TLS client certificate's subject
};

}  // namespace detail

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
            const http_request_view* http = nullptr,
            const detail::request_extras* extras = nullptr) noexcept
        : message_{message}, peer_{peer}, listener_{listener}, http_{http}, extras_{extras} {}

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

    // ---- since SDK 1.4 (appended: the members above keep their places) ----

    /// The route of the listener's `routes` that matched this request: its `name`, or its
    /// index ("0", "1", ...) when it has none. Empty on a listener without routes.
    std::string_view route() const noexcept {
        return extras_ ? extras_->route : std::string_view{};
    }
    /// The request's path after the matched route's prefix, percent-decoded and normalised
    /// ("AAPL" for "/api/quotes/AAPL?x=1" on the route "/api/quotes/"); empty after an exact
    /// route and on a listener without routes.
    std::string_view path_rest() const noexcept {
        return extras_ ? extras_->path_rest : std::string_view{};
    }
    /// Attaches `value` under `key` for the plugins after this one in the chain (a filter
    /// that authenticated the client attaches who it is). Both are copied; a later attach
    /// of the same key replaces the value. Lives until the request ends. Ignored when the
    /// request was not made by a chain (a plugin's own copy for a test).
    void attach(std::string_view key, std::string_view value) const {
        if (extras_ && extras_->attributes) extras_->attributes->set(key, value);
    }
    /// The value an earlier filter attached under `key`; empty when none did.
    std::string_view attached(std::string_view key) const noexcept {
        return extras_ && extras_->attributes ? extras_->attributes->get(key) : std::string_view{};
    }

    /// On a TLS listener with `client_ca`: the subject of the client's verified
    /// certificate, RFC 2253 ("CN=alice,O=Example"). Empty without one, and on plaintext.
    std::string_view client_subject() const noexcept {
        return extras_ ? extras_->client_subject : std::string_view{};
    }

  private:
    std::string_view message_;
    std::string_view peer_;
    std::string_view listener_;
    const http_request_view* http_;
    const detail::request_extras* extras_;  // since SDK 1.4
};

}  // namespace plugd
