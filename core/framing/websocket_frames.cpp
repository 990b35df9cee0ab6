// RFC 6455 §5 on the server's side. The buffer a message is decoded in looks like this
// while the message arrives in fragments:
//
//   [first header][message so far][gap: later headers, control frames][next frame ...]
//   0             begin            end                                 read_
//
// Each fragment's payload, once whole, is unmasked and moved down to `end`; the gap is
// closed (the rest moved down to `end`) only when next() runs out of whole frames, so a
// burst of small fragments costs one move of the rest, not one per fragment.
#include "framing/websocket_frames.hpp"

#include <algorithm>
#include <cstring>

namespace plugd {
namespace {

std::uint8_t byte_at(const char* p) noexcept {
    return static_cast<std::uint8_t>(*p);
}

std::uint64_t big_endian(const char* p, int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | byte_at(p + i);
    return v;
}

// XORs `n` bytes at `p` with the 4-byte `key`, eight bytes at a time where it can: a
// multiple of 8 keeps the key's phase, so one 8-byte pattern serves every word.
void apply_mask(char* p, std::size_t n, const char* key) noexcept {
    char pattern[8];
    std::memcpy(pattern, key, 4);
    std::memcpy(pattern + 4, key, 4);
    std::uint64_t word_key;
    std::memcpy(&word_key, pattern, 8);
    std::size_t i = 0;
    for (; n - i >= 8; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        word ^= word_key;
        std::memcpy(p + i, &word, 8);
    }
    for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i % 4]);
}

ws_frame refusal(std::uint16_t code, const char* reason) noexcept {
    ws_frame f;
    f.what = ws_frame::kind::refused;
    f.close_code = code;
    f.reason = reason;
    return f;
}

ws_frame protocol_error(const char* reason) noexcept {
    return refusal(ws_close_code::protocol_error, reason);
}

bool known_opcode(std::uint8_t op) noexcept {
    switch (static_cast<ws_opcode>(op)) {
        case ws_opcode::continuation:
        case ws_opcode::text:
        case ws_opcode::binary:
        case ws_opcode::close:
        case ws_opcode::ping:
        case ws_opcode::pong:
            return true;
    }
    return false;
}

}  // namespace

bool ws_close_code_allowed(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

ws_frame ws_decoder::next(std::span<char> input, std::size_t max_message) noexcept {
    char* const buf = input.data();
    const std::size_t size = input.size();
    // Out of whole frames: close the gap, so that what is kept is the message so far and
    // the start of the next frame, contiguous.
    const auto incomplete = [&](std::size_t pos) noexcept {
        if (pos != message_end_) std::memmove(buf + message_end_, buf + pos, size - pos);
        read_ = message_end_;
        ws_frame f;
        f.kept = message_end_ + (size - pos);
        return f;
    };
    std::size_t pos = read_;
    for (;;) {
        const std::size_t avail = size - pos;
        if (avail < 2) return incomplete(pos);
        const std::uint8_t b0 = byte_at(buf + pos), b1 = byte_at(buf + pos + 1);
        const bool fin = (b0 & 0x80) != 0;
        const auto op = static_cast<ws_opcode>(b0 & 0x0F);
        const bool control = (b0 & 0x08) != 0;
        // §5.2: without an extension agreed (plugd agrees to none), RSV1-3 are 0.
        if (b0 & 0x70) return protocol_error("reserved bits set, and no extension was agreed");
        if (!known_opcode(b0 & 0x0F)) return protocol_error("unknown opcode");
        // §5.4, §5.5: control frames are never fragmented; a message's fragments follow
        // one another, with only control frames in between.
        if (control && !fin) return protocol_error("fragmented control frame");
        if (op == ws_opcode::continuation && !in_message())
            return protocol_error("continuation frame with no message to continue");
        if (!control && op != ws_opcode::continuation && in_message())
            return protocol_error("new message inside a fragmented message");
        // §5.1: a server closes the connection on a frame that is not masked.
        if (!(b1 & 0x80)) return protocol_error("unmasked frame from a client");
        std::uint64_t length = b1 & 0x7F;
        std::size_t header = 2;
        if (control && length > ws_max_control_payload)
            return protocol_error("control frame longer than 125 bytes");
        if (length == 126) {
            if (avail < 4) return incomplete(pos);
            length = big_endian(buf + pos + 2, 2);
            header = 4;
            // §5.2: "the minimal number of bytes MUST be used to encode the length".
            if (length < 126) return protocol_error("frame length not in its shortest form");
        } else if (length == 127) {
            if (avail < 10) return incomplete(pos);
            length = big_endian(buf + pos + 2, 8);
            header = 10;
            if (length >> 63) return protocol_error("frame length with its top bit set");
            if (length <= 0xFFFF) return protocol_error("frame length not in its shortest form");
        }
        // Refused as soon as the length is known: nothing of it is ever buffered.
        if (!control) {
            const std::size_t so_far = in_message() ? message_end_ - message_begin_ : 0;
            if (so_far > max_message || length > max_message - so_far)
                return refusal(ws_close_code::message_too_big,
                               "message larger than max_message_bytes");
        }
        header += 4;  // the masking key
        if (avail < header || avail - header < length) return incomplete(pos);

        const auto n = static_cast<std::size_t>(length);
        char* const payload = buf + pos + header;
        apply_mask(payload, n, payload - 4);
        const std::size_t end = pos + header + n;

        if (control) {
            ws_frame f;
            f.what = ws_frame::kind::control;
            f.opcode = op;
            f.payload = {payload, n};
            if (op == ws_opcode::close) {
                // §5.5.1, §7.4: no body, or a code and a UTF-8 reason.
                f.close_code = ws_close_code::no_status;
                if (n == 1) return protocol_error("close frame with a one-byte body");
                if (n >= 2) {
                    f.close_code = static_cast<std::uint16_t>(big_endian(payload, 2));
                    if (!ws_close_code_allowed(f.close_code))
                        return protocol_error("close code not allowed");
                    f.payload = {payload + 2, n - 2};
                    if (!valid_utf8(f.payload))
                        return refusal(ws_close_code::invalid_payload,
                                       "close reason that is not UTF-8");
                }
            }
            // Between fragments, the message's bytes before it are still needed: the
            // frame joins the gap instead of being dropped.
            if (in_message()) {
                read_ = end;
            } else {
                read_ = 0;
                f.consumed = end;
            }
            return f;
        }

        const ws_opcode type = op == ws_opcode::continuation ? message_type_ : op;
        if (type == ws_opcode::text && !utf8_.feed({payload, n}))
            return refusal(ws_close_code::invalid_payload, "text that is not UTF-8");
        if (op != ws_opcode::continuation) {
            // A message begins, at the start of the buffer (pos is 0 outside a message).
            if (!fin) {
                message_type_ = op;
                message_begin_ = static_cast<std::uint8_t>(header);
                message_end_ = header + n;
                pos = end;
                continue;
            }
            ws_frame f;
            f.what = ws_frame::kind::message;
            f.opcode = op;
            f.payload = {payload, n};
            f.consumed = end;
            if (type == ws_opcode::text && !utf8_.complete())
                return refusal(ws_close_code::invalid_payload, "text ending inside a character");
            utf8_.reset();
            read_ = 0;
            return f;
        }
        if (payload != buf + message_end_) std::memmove(buf + message_end_, payload, n);
        message_end_ += n;
        pos = end;
        if (!fin) continue;
        if (type == ws_opcode::text && !utf8_.complete())
            return refusal(ws_close_code::invalid_payload, "text ending inside a character");
        ws_frame f;
        f.what = ws_frame::kind::message;
        f.opcode = type;
        f.payload = {buf + message_begin_, message_end_ - message_begin_};
        f.consumed = end;
        utf8_.reset();
        message_type_ = ws_opcode::continuation;
        message_begin_ = 0;
        message_end_ = 0;
        read_ = 0;
        return f;
    }
}

std::size_t write_frame_header(std::span<char, ws_max_header_bytes> out, ws_opcode opcode,
                               std::uint64_t size, bool fin) noexcept {
    out[0] = static_cast<char>((fin ? 0x80 : 0) | static_cast<std::uint8_t>(opcode));
    int length_bytes = 0;
    if (size < 126) {
        out[1] = static_cast<char>(size);
    } else if (size <= 0xFFFF) {
        out[1] = 126;
        length_bytes = 2;
    } else {
        out[1] = 127;
        length_bytes = 8;
    }
    for (int i = 0; i < length_bytes; ++i)
        out[2 + i] = static_cast<char>(size >> (8 * (length_bytes - 1 - i)));
    return 2 + static_cast<std::size_t>(length_bytes);
}

void append_frame_header(std::string& out, ws_opcode opcode, std::uint64_t size, bool fin) {
    std::array<char, ws_max_header_bytes> header;
    out.append(header.data(), write_frame_header(header, opcode, size, fin));
}

void append_close(std::string& out, std::uint16_t code, std::string_view reason) {
    if (code == ws_close_code::no_status) {
        append_frame_header(out, ws_opcode::close, 0);
        return;
    }
    if (reason.size() > ws_max_close_reason) {
        std::size_t n = ws_max_close_reason;
        while (n > 0 && (byte_at(reason.data() + n) & 0xC0) == 0x80) --n;  // a tail byte
        reason = reason.substr(0, n);
    }
    append_frame_header(out, ws_opcode::close, 2 + reason.size());
    out += static_cast<char>(code >> 8);
    out += static_cast<char>(code & 0xFF);
    out += reason;
}

void append_ping(std::string& out, std::string_view payload) {
    payload = payload.substr(0, ws_max_control_payload);
    append_frame_header(out, ws_opcode::ping, payload.size());
    out += payload;
}

void append_pong(std::string& out, std::string_view payload) {
    payload = payload.substr(0, ws_max_control_payload);
    append_frame_header(out, ws_opcode::pong, payload.size());
    out += payload;
}

void append_masked_frame(std::string& out, ws_opcode opcode, std::string_view payload,
                         std::array<std::uint8_t, 4> mask, bool fin) {
    const std::size_t header_at = out.size();
    append_frame_header(out, opcode, payload.size(), fin);
    out[header_at + 1] = static_cast<char>(out[header_at + 1] | 0x80);
    const std::size_t key_at = out.size();
    out.append(reinterpret_cast<const char*>(mask.data()), mask.size());
    const std::size_t payload_at = out.size();
    out += payload;
    apply_mask(out.data() + payload_at, payload.size(), out.data() + key_at);
}

}  // namespace plugd
