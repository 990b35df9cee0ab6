// plugd::request: a read-only view of one framed request.
#pragma once

#include <string_view>

namespace plugd {

/// One request, as framed by the listener (a line without its `\n`/`\r\n`, or one read in
/// `oneshot` framing).
///
/// Lifetime: the views stay valid until the `handle` call that received the request
/// completes. Copy what you need to keep longer.
class request {
  public:
    request(std::string_view message, std::string_view peer, std::string_view listener) noexcept
        : message_{message}, peer_{peer}, listener_{listener} {}

    /// The request bytes, not necessarily valid UTF-8, possibly empty.
    std::string_view message() const noexcept { return message_; }
    /// The client's address as `ip:port` (IPv6 as `[ip]:port`).
    std::string_view peer() const noexcept { return peer_; }
    /// The name of the listener (server.json `/listeners/N/name`) that accepted the client.
    std::string_view listener() const noexcept { return listener_; }

  private:
    std::string_view message_;
    std::string_view peer_;
    std::string_view listener_;
};

}  // namespace plugd
