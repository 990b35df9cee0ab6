// Fuzz target: WebSocket frames. Checks invariants, not just crashes. Whatever the bytes and
// however they are split into reads, the decoder finds the same events; every view stays in
// the buffer; the buffer it keeps stays bounded; text it delivers is UTF-8 (by a second,
// plain decoder). In the second mode the input describes frames, which are encoded as a
// client would and checked against a model of RFC 6455: the events, or the refusal's code.
//
// Input: byte 0 chooses max_message_bytes (0 to 4080), byte 1 the read size, byte 2 the
// mode (even: the rest is the stream's bytes; odd: the rest describes frames, see below).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../support/utf8_reference.hpp"
#include "framing/websocket_frames.hpp"

namespace {

using plugd::ws_decoder;
using plugd::ws_frame;
using plugd::ws_opcode;
using plugd::test::reference_utf8;
using plugd::test::utf8_verdict;

void check(bool ok) {
    if (!ok) std::abort();
}

struct outcome {
    std::vector<std::string> events;  // opcode byte, close code, then the payload
    std::uint16_t refused = 0;
    friend bool operator==(const outcome&, const outcome&) = default;
};

std::string event(ws_opcode op, std::uint16_t code, std::string_view payload) {
    std::string e{static_cast<char>(op), static_cast<char>(code >> 8), static_cast<char>(code)};
    e += payload;
    return e;
}

// Decodes `input` as a serving loop would, `chunk` bytes per read, checking every result.
outcome decode(std::string_view input, std::size_t chunk, std::size_t max) {
    outcome out;
    ws_decoder decoder;
    std::string buffer;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer += input.substr(at, chunk);
        for (;;) {
            const ws_frame f = decoder.next(buffer, max);
            if (f.what == ws_frame::kind::incomplete) {
                check(f.kept <= buffer.size() && f.kept <= ws_decoder::most_kept(max));
                buffer.resize(f.kept);
                break;
            }
            if (f.what == ws_frame::kind::refused) {
                check(f.close_code == 1002 || f.close_code == 1007 || f.close_code == 1009);
                check(*f.reason != '\0');
                out.refused = f.close_code;
                return out;
            }
            check(f.consumed <= buffer.size());
            check(f.payload.data() >= buffer.data() &&
                  f.payload.data() + f.payload.size() <= buffer.data() + buffer.size());
            if (f.what == ws_frame::kind::message) {
                check(f.opcode == ws_opcode::text || f.opcode == ws_opcode::binary);
                check(f.payload.size() <= max);
                check(f.consumed > 0 && !decoder.in_message());
                if (f.opcode == ws_opcode::text)
                    check(reference_utf8(f.payload) == utf8_verdict::whole);
            } else {
                check(f.what == ws_frame::kind::control);
                check(f.opcode == ws_opcode::close || f.opcode == ws_opcode::ping ||
                      f.opcode == ws_opcode::pong);
                check(f.payload.size() <= plugd::ws_max_control_payload);
                check((f.consumed == 0) == decoder.in_message());
                if (f.opcode == ws_opcode::close) {
                    check(f.close_code == 1005 || plugd::ws_close_code_allowed(f.close_code));
                    check(reference_utf8(f.payload) == utf8_verdict::whole);
                }
            }
            out.events.push_back(event(f.opcode, f.close_code, f.payload));
            buffer.erase(0, f.consumed);
        }
    }
    return out;
}

// The close codes RFC 6455 §7.4 lets an endpoint send, written out as a list.
bool sendable(std::uint16_t code) {
    static constexpr std::array<std::uint16_t, 12> registered{1000, 1001, 1002, 1003, 1007, 1008,
                                                              1009, 1010, 1011, 1012, 1013, 1014};
    return std::find(registered.begin(), registered.end(), code) != registered.end() ||
           (code >= 3000 && code <= 4999);
}

// RFC 6455 as a client's sequence of frames should be judged, frame by frame.
struct model {
    std::size_t max;
    outcome out;
    bool in_message = false;
    ws_opcode type = ws_opcode::continuation;
    std::string message;

    // False once refused: nothing after counts.
    bool add(ws_opcode op, bool fin, std::string_view payload) {
        const auto refuse = [&](std::uint16_t code) {
            out.refused = code;
            return false;
        };
        const bool control =
            op == ws_opcode::close || op == ws_opcode::ping || op == ws_opcode::pong;
        if (control) {
            if (!fin || payload.size() > 125) return refuse(1002);
            std::uint16_t code = 0;
            if (op == ws_opcode::close) {
                code = 1005;
                if (payload.size() == 1) return refuse(1002);
                if (payload.size() >= 2) {
                    code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(payload[0]) << 8 |
                                                      static_cast<std::uint8_t>(payload[1]));
                    if (!sendable(code)) return refuse(1002);
                    payload.remove_prefix(2);
                    if (reference_utf8(payload) != utf8_verdict::whole) return refuse(1007);
                }
            }
            out.events.push_back(event(op, code, payload));
            return true;
        }
        if (op == ws_opcode::continuation && !in_message) return refuse(1002);
        if (op != ws_opcode::continuation && in_message) return refuse(1002);
        if ((in_message ? message.size() : 0) + payload.size() > max) return refuse(1009);
        if (op != ws_opcode::continuation) {
            type = op;
            message.clear();
        }
        message += payload;
        const utf8_verdict text = reference_utf8(message);
        if (type == ws_opcode::text && text == utf8_verdict::invalid) return refuse(1007);
        in_message = !fin;
        if (fin) {
            if (type == ws_opcode::text && text != utf8_verdict::whole) return refuse(1007);
            out.events.push_back(event(type, 0, message));
        }
        return true;
    }
};

// The frames described by `d`: per frame a byte c (opcode: c % 6 among text, binary,
// continuation, ping, pong, close; bit 6: not final; bit 5: a length in hundreds), a length
// byte, and that many payload bytes (taken from the input, repeating it when it runs out).
std::string described_frames(std::string_view d, model& expected) {
    static constexpr std::array<ws_opcode, 6> ops{ws_opcode::text,         ws_opcode::binary,
                                                  ws_opcode::continuation, ws_opcode::ping,
                                                  ws_opcode::pong,         ws_opcode::close};
    std::string stream;
    bool judged = true;
    for (std::size_t at = 0; at < d.size();) {
        const auto c = static_cast<std::uint8_t>(d[at++]);
        const ws_opcode op = ops[c % ops.size()];
        const bool fin = (c & 0x40) == 0;
        std::size_t length = at < d.size() ? static_cast<std::uint8_t>(d[at++]) : 0;
        if (c & 0x20) length *= 300;  // reaches the 8-byte length form
        std::string payload(length, '\0');
        for (std::size_t i = 0; i < length; ++i) payload[i] = d[(at + i) % d.size()];
        at += std::min(length, d.size() - at);
        const std::array<std::uint8_t, 4> mask{c, static_cast<std::uint8_t>(at),
                                               static_cast<std::uint8_t>(length), 0x5A};
        plugd::append_masked_frame(stream, op, payload, mask, fin);
        if (judged) judged = expected.add(op, fin, payload);
    }
    return stream;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::size_t max = std::size_t{data[0]} * 16;
    const std::size_t chunk = 1 + data[1] % 64;
    const std::string_view rest{reinterpret_cast<const char*>(data) + 3, size - 3};
    if (data[2] % 2 == 0) {
        // Raw bytes: however they are read, the same events, or the same refusal.
        const outcome whole = decode(rest, rest.size() + 1, max);
        check(decode(rest, chunk, max) == whole);
        return 0;
    }
    model expected{max};
    const std::string stream = described_frames(rest, expected);
    const outcome whole = decode(stream, stream.size() + 1, max);
    check(whole == expected.out);
    check(decode(stream, chunk, max) == whole);
    return 0;
}
