// websocket_frames: WebSocket by hand for the tests: an upgrade, client frames (also the
// malformed ones real clients refuse to send), and the server's frames read one by one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "line_client.hpp"

namespace plugd::test {

/// A client frame, masked as RFC 6455 requires (unless `masked` is false: a protocol error).
std::string client_frame(std::uint8_t opcode, const std::string& payload, bool masked = true);

/// A server frame as read: opcode and payload (plugd never masks, and the tests' frames are
/// short enough for a one-byte or two-byte length).
struct server_frame {
    std::uint8_t opcode = 0;
    std::string payload;
    std::uint16_t close_code() const;
};

/// The next frame from `c`, or nullopt when none came whole within `timeout`.
std::optional<server_frame> read_frame(line_client& c, milliseconds timeout = 5s);

/// A client that upgrades by hand on `port` to `path` (with `fields`, more header fields,
/// each ending in "\r\n"): the 101 read and checked, frames next. `small`: with a small
/// receive buffer, so that a client that never reads fills up soon.
line_client upgrade(std::uint16_t port, const std::string& path, bool small = false,
                    const std::string& fields = "");

}  // namespace plugd::test
