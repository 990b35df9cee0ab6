// websocket_frames: WebSocket by hand for the tests (see the header).
#include "websocket_frames.hpp"

#include <doctest/doctest.h>

#include <array>

namespace plugd::test {

std::string client_frame(std::uint8_t opcode, const std::string& payload, bool masked) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    const std::array<char, 4> mask{'\x12', '\x34', '\x56', '\x78'};
    REQUIRE(payload.size() < 65536);
    const char mask_bit = masked ? '\x80' : '\0';
    if (payload.size() < 126) {
        f += static_cast<char>(mask_bit | static_cast<char>(payload.size()));
    } else {
        f += static_cast<char>(mask_bit | 126);
        f += static_cast<char>(payload.size() >> 8);
        f += static_cast<char>(payload.size() & 0xff);
    }
    if (masked) f.append(mask.data(), 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        f += masked ? static_cast<char>(payload[i] ^ mask[i % 4]) : payload[i];
    return f;
}

std::uint16_t server_frame::close_code() const {
    return payload.size() >= 2
               ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                            static_cast<std::uint8_t>(payload[1]))
               : 0;
}

std::optional<server_frame> read_frame(line_client& c, milliseconds timeout) {
    const auto head = c.read_exactly(2, timeout);
    if (!head) return std::nullopt;
    server_frame f;
    f.opcode = static_cast<std::uint8_t>((*head)[0]) & 0x0f;
    std::size_t size = static_cast<std::uint8_t>((*head)[1]) & 0x7f;
    if (size == 126) {
        const auto ext = c.read_exactly(2, timeout);
        if (!ext) return std::nullopt;
        size = (static_cast<std::uint8_t>((*ext)[0]) << 8) | static_cast<std::uint8_t>((*ext)[1]);
    }
    REQUIRE(size < 126 * 1024);
    if (size == 0) return f;
    const auto body = c.read_exactly(size, timeout);
    if (!body) return std::nullopt;
    f.payload = *body;
    return f;
}

line_client upgrade(std::uint16_t port, const std::string& path, bool small,
                    const std::string& fields) {
    line_client c{port, small ? 4096 : 0};
    c.send("GET " + path +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           fields + "\r\n");
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
        const auto byte = c.read_exactly(1);
        REQUIRE(byte);
        head += *byte;
    }
    REQUIRE_MESSAGE(head.rfind("HTTP/1.1 101 ", 0) == 0, head);
    // RFC 6455 §1.3's example key and its answer.
    REQUIRE_MESSAGE(
        head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos,
        head);
    return c;
}

}  // namespace plugd::test
