// websocket_frames: RFC 6455's frames as a server sees them. The decoder finds a client's
// frames in the bytes a connection has buffered and unmasks them where they lie: a message,
// even a fragmented one, is handed over as a view into those bytes, with no second buffer
// and no allocation. The encoders write the server's (unmasked) frames. Pure: no I/O, no
// Asio; fuzzed by tests/fuzz/websocket_frames_fuzz.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "framing/utf8_validator.hpp"

namespace plugd {

/// A frame's opcode (RFC 6455 §5.2), with the wire's values.
enum class ws_opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

/// Close codes (RFC 6455 §7.4.1) that plugd sends or reports.
namespace ws_close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
/// Never sent: reported for a close frame without a code.
inline constexpr std::uint16_t no_status = 1005;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace ws_close_code

/// Whether `code` may be sent in a close frame (RFC 6455 §7.4): 1000-1003, 1007-1014 (those
/// IANA has registered since), 3000-4999. 1005 and 1006 only ever describe a close.
bool ws_close_code_allowed(std::uint16_t code) noexcept;

inline constexpr std::size_t ws_max_control_payload = 125;  ///< §5.5
inline constexpr std::size_t ws_max_close_reason = 123;     ///< a control payload less the code
inline constexpr std::size_t ws_max_header_bytes = 10;      ///< of a server (unmasked) frame

/// What the decoder found in a connection's buffered bytes.
struct ws_frame {
    enum class kind : std::uint8_t {
        /// No whole frame yet: first shrink the buffer to its first `kept` bytes (the
        /// decoder closed the gaps a fragmented message leaves), then read more.
        incomplete,
        /// A whole data message (fragments joined): `opcode` text or binary, `payload`
        /// (text: valid UTF-8). Drop the first `consumed` bytes once done with it.
        message,
        /// A close, ping or pong frame: `payload` (close: the reason, and `close_code`, 1005
        /// when the frame has none). Drop the first `consumed` bytes once done with it: 0
        /// when it came between the fragments of a message, whose bytes are still needed.
        control,
        /// A frame the server must refuse: close with `close_code` (1002, 1007 or 1009) and
        /// `reason`, then stop reading. The decoder is not usable any more.
        refused,
    };
    kind what = kind::incomplete;
    ws_opcode opcode = ws_opcode::continuation;
    std::uint16_t close_code = 0;
    std::string_view payload;  ///< a view into the input, unmasked; see ws_decoder::next
    std::size_t consumed = 0;  ///< message, control: bytes to drop from the front
    std::size_t kept = 0;      ///< incomplete: bytes of the buffer still meaningful
    const char* reason = "";   ///< refused: what was wrong, for the close frame and the log
};

/// Finds a client's frames (RFC 6455 §5) in the bytes a connection buffers, one event per
/// call, whole or in pieces split anywhere, pipelined or not. The caller keeps one buffer
/// of received bytes; the decoder keeps where it is in it between calls (a few words):
///
///     buffer.append(what was read);
///     for (;;) {
///         ws_frame f = decoder.next(buffer, max_message_bytes);
///         if (f.what == incomplete) { buffer.resize(f.kept); break; }   // read more
///         if (f.what == refused) { close with f.close_code; return; }
///         handle f;                          // pong a ping, deliver a message, ...
///         buffer.erase(0, f.consumed);       // then, and only then
///     }
///
/// A fragmented message is joined in place: each fragment's payload is moved down over the
/// header bytes before it, so the whole message ends up contiguous and `payload` views it.
/// Control frames between fragments are reported as they come (consumed 0). Not
/// thread-safe: one per connection, used from its thread. Never allocates or throws.
class ws_decoder {
  public:
    /// The next event in `input`: the whole buffer, from its first byte (which is the first
    /// byte of the message under way, if any), with what the last event asked done to it.
    /// Unmasks frames in place. `max_message` bounds a data message's payload, fragments
    /// together: a frame whose header announces more is refused (1009) at once, before its
    /// payload is read. Views in the result stay valid until the next call or until the
    /// caller changes the buffer.
    ws_frame next(std::span<char> input, std::size_t max_message) noexcept;

    /// Whether a fragmented message has begun and not ended.
    bool in_message() const noexcept { return message_type_ != ws_opcode::continuation; }

    /// The most bytes an incomplete next() keeps (ws_frame::kept) with this `max_message`: a
    /// reader that can buffer more than this always has room for the rest of a frame.
    static constexpr std::size_t most_kept(std::size_t max_message) noexcept {
        return max_message + 2 * 14 + ws_max_control_payload;  // 14: a client frame's header
    }

  private:
    std::size_t message_end_ = 0;     ///< the message under way is input[begin, end) so far
    std::size_t read_ = 0;            ///< where the next frame starts (past any gap)
    utf8_validator utf8_;             ///< across the fragments of a text message
    std::uint8_t message_begin_ = 0;  ///< the first fragment's header length
    ws_opcode message_type_ = ws_opcode::continuation;  ///< text or binary while under way
};

/// Writes the header of a server frame (unmasked) for a payload of `size` bytes: 2, 4 or 10
/// bytes, the count returned.
std::size_t write_frame_header(std::span<char, ws_max_header_bytes> out, ws_opcode opcode,
                               std::uint64_t size, bool fin = true) noexcept;
/// Appends the header of a server frame (write_frame_header).
void append_frame_header(std::string& out, ws_opcode opcode, std::uint64_t size, bool fin = true);
/// Appends a close frame with `code` and `reason`. The reason should fit in
/// ws_max_close_reason bytes; a longer one is cut there, at a UTF-8 character boundary.
/// `code` 1005 (no_status) writes a close frame without a body.
void append_close(std::string& out, std::uint16_t code, std::string_view reason = {});
/// Appends a ping, or a pong answering a ping with its `payload` (at most 125 bytes; more
/// is cut).
void append_ping(std::string& out, std::string_view payload = {});
void append_pong(std::string& out, std::string_view payload);

/// Appends a frame as a client sends it, masked with `mask` (RFC 6455 §5.3): what the
/// tests, and plugd::testing's sessions, speak to the decoder.
void append_masked_frame(std::string& out, ws_opcode opcode, std::string_view payload,
                         std::array<std::uint8_t, 4> mask, bool fin = true);

}  // namespace plugd
