// WebSocket frames on bytes: what ws_decoder finds in a client's stream, whole, split at
// every byte and pipelined; every refusal with its close code; and the server's frames as
// the encoders write them.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "framing/websocket_frames.hpp"

namespace {

using plugd::ws_decoder;
using plugd::ws_frame;
using plugd::ws_opcode;

constexpr std::array<std::uint8_t, 4> mask{0x37, 0xFA, 0x21, 0x3D};  // RFC 6455 §5.7's

std::string masked(ws_opcode op, std::string_view payload, bool fin = true,
                   std::array<std::uint8_t, 4> key = mask) {
    std::string out;
    plugd::append_masked_frame(out, op, payload, key, fin);
    return out;
}
std::string text(std::string_view payload, bool fin = true) {
    return masked(ws_opcode::text, payload, fin);
}
std::string binary(std::string_view payload, bool fin = true) {
    return masked(ws_opcode::binary, payload, fin);
}
std::string more(std::string_view payload, bool fin = true) {
    return masked(ws_opcode::continuation, payload, fin);
}
std::string ping(std::string_view payload) {
    return masked(ws_opcode::ping, payload);
}
std::string close_frame(std::uint16_t code, std::string_view reason = {}) {
    std::string body{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    return masked(ws_opcode::close, body + std::string{reason});
}

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (const int b : list) s += static_cast<char>(b);
    return s;
}

// A payload whose every byte differs from its neighbours (unmasking errors show).
std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xFF);
    return s;
}

// What a session would see: each event as text, and the refusal if any.
struct decoded {
    std::vector<std::string> events;  // "text:...", "binary:...", "ping:...", "close 1000:..."
    std::uint16_t refused = 0;        // the close code of a refusal
    std::string reason;
    std::size_t most_buffered = 0;  // the largest the buffer ever was
    friend bool operator==(const decoded&, const decoded&) = default;
};

std::string describe(const ws_frame& f) {
    const std::string payload{f.payload};
    switch (f.opcode) {
        case ws_opcode::text:
            return "text:" + payload;
        case ws_opcode::binary:
            return "binary:" + payload;
        case ws_opcode::ping:
            return "ping:" + payload;
        case ws_opcode::pong:
            return "pong:" + payload;
        case ws_opcode::close:
            return "close " + std::to_string(f.close_code) + ":" + payload;
        case ws_opcode::continuation:
            break;
    }
    return "continuation?";
}

// Feeds `input` to a decoder `chunk` bytes per read (the first read: `first` bytes, if not
// 0), as a serving loop does: the buffer is shrunk to `kept` on incomplete, and `consumed`
// dropped after each event.
decoded decode(std::string_view input, std::size_t chunk = SIZE_MAX, std::size_t max = 1 << 20,
               std::size_t first = 0) {
    decoded out;
    ws_decoder decoder;
    std::string buffer;
    for (std::size_t at = 0; at < input.size();) {
        const std::size_t n = at == 0 && first != 0 ? first : chunk;
        buffer += input.substr(at, n);
        at += std::min(n, input.size() - at);
        out.most_buffered = std::max(out.most_buffered, buffer.size());
        for (;;) {
            const ws_frame f = decoder.next(buffer, max);
            if (f.what == ws_frame::kind::incomplete) {
                REQUIRE(f.kept <= buffer.size());
                REQUIRE(f.kept <= ws_decoder::most_kept(max));
                buffer.resize(f.kept);
                break;
            }
            if (f.what == ws_frame::kind::refused) {
                out.refused = f.close_code;
                out.reason = f.reason;
                return out;
            }
            REQUIRE(f.consumed <= buffer.size());
            REQUIRE(f.payload.data() >= buffer.data());
            REQUIRE(f.payload.data() + f.payload.size() <= buffer.data() + buffer.size());
            out.events.push_back(describe(f));
            buffer.erase(0, f.consumed);
        }
    }
    return out;
}

// decode() with every split of `input` into two reads, and a byte per read: each must find
// the same events as the whole.
void check_every_split(std::string_view input, const std::vector<std::string>& expected,
                       std::uint16_t refused = 0, std::size_t max = 1 << 20) {
    const decoded whole = decode(input, SIZE_MAX, max);
    CHECK(whole.events == expected);
    CHECK(whole.refused == refused);
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        CAPTURE(cut);
        const decoded split = decode(input, SIZE_MAX, max, cut);  // two reads
        CHECK(split.events == whole.events);
        CHECK(split.refused == whole.refused);
    }
    const decoded bytewise = decode(input, 1, max);
    CHECK(bytewise.events == whole.events);
    CHECK(bytewise.refused == whole.refused);
}

}  // namespace

TEST_CASE("websocket frames: each length class is found whole, unmasked, consuming its bytes") {
    for (const std::size_t n : {0, 1, 125, 126, 127, 65535, 65536, 70001}) {
        CAPTURE(n);
        const std::string payload = pattern(n);
        const std::string frame = binary(payload);
        const std::size_t header = n < 126 ? 6 : n <= 65535 ? 8 : 14;
        CHECK(frame.size() == header + n);
        std::string buffer = frame + text("next");
        ws_decoder decoder;
        const ws_frame f = decoder.next(buffer, 1 << 20);
        REQUIRE(f.what == ws_frame::kind::message);
        CHECK(f.opcode == ws_opcode::binary);
        CHECK(f.consumed == frame.size());
        CHECK(f.payload == payload);
        // In place: the payload is a view of the buffer right after the header.
        CHECK(f.payload.data() == buffer.data() + header);
        buffer.erase(0, f.consumed);
        const ws_frame next = decoder.next(buffer, 1 << 20);
        REQUIRE(next.what == ws_frame::kind::message);
        CHECK(next.payload == "next");
    }
}

TEST_CASE("websocket frames: a frame of each length class is found the same split at every byte") {
    for (const std::size_t n : {0, 125, 126, 300, 65535, 65536}) {
        CAPTURE(n);
        const std::string payload = pattern(n);
        const std::string input = binary(payload);
        // Two reads, cut anywhere (for the large ones: within the header and the first and
        // last bytes of the payload), then a byte per read.
        for (std::size_t cut = 1; cut < input.size(); ++cut) {
            if (n > 300 && cut > 40 && cut < input.size() - 40) continue;
            CAPTURE(cut);
            const decoded split = decode(input, SIZE_MAX, 1 << 20, cut);
            REQUIRE(split.events.size() == 1);
            CHECK(split.events[0] == "binary:" + payload);
        }
        const decoded bytewise = decode(input, 1);
        REQUIRE(bytewise.events.size() == 1);
        CHECK(bytewise.events[0] == "binary:" + payload);
        CHECK(bytewise.most_buffered <= n + 14);
    }
}

TEST_CASE(
    "websocket frames: a stream with fragments, control frames between them, and every "
    "kind of frame is found the same whole, split at every byte and a byte per read") {
    const std::string input =
        text("hello") + text("frag", false) + ping("p1") + more("ment", false) +
        masked(ws_opcode::pong, "p2") + ping("") + more("ed") + binary(pattern(300)) + text("") +
        binary("", false) + more("", false) + more("") + text("h\xC3", false) + ping("mid") +
        more("\xA9\xF0\x9F", false) + more("\x98\x80!") + close_frame(1000, "bye");
    check_every_split(input, {"text:hello", "ping:p1", "pong:p2", "ping:", "text:fragmented",
                              "binary:" + pattern(300), "text:", "binary:", "ping:mid",
                              "text:h\xC3\xA9\xF0\x9F\x98\x80!", "close 1000:bye"});
}

TEST_CASE("websocket frames: pipelined frames in one read come out one per call, in order") {
    std::string buffer = text("a") + binary("bb") + ping("c") + text("d", false) + more("e");
    ws_decoder decoder;
    std::vector<std::string> seen;
    std::vector<std::size_t> consumed;
    for (int i = 0; i < 10; ++i) {
        const ws_frame f = decoder.next(buffer, 1000);
        if (f.what == ws_frame::kind::incomplete) {
            CHECK(f.kept == 0);
            break;
        }
        REQUIRE(f.what != ws_frame::kind::refused);
        seen.push_back(describe(f));
        consumed.push_back(f.consumed);
        buffer.erase(0, f.consumed);
    }
    CHECK(seen == std::vector<std::string>{"text:a", "binary:bb", "ping:c", "text:de"});
    CHECK(consumed == std::vector<std::size_t>{7, 8, 7, 14});
    CHECK(buffer.empty());
}

TEST_CASE("websocket frames: a fragmented message is joined in place at the start of the buffer") {
    std::string buffer = text("ab", false) + ping("x") + more("cd", false) + more("ef");
    ws_decoder decoder;
    const ws_frame control = decoder.next(buffer, 1000);
    REQUIRE(control.what == ws_frame::kind::control);
    CHECK(control.payload == "x");
    CHECK(control.consumed == 0);  // the message's first bytes are still needed
    CHECK(decoder.in_message());
    const ws_frame message = decoder.next(buffer, 1000);
    REQUIRE(message.what == ws_frame::kind::message);
    CHECK(message.payload == "abcdef");
    CHECK(message.payload.data() == buffer.data() + 6);  // right after the first header
    CHECK(message.consumed == buffer.size());
    CHECK_FALSE(decoder.in_message());
}

TEST_CASE("websocket frames: masks are undone for every payload length and key") {
    for (const auto key : {std::array<std::uint8_t, 4>{0, 0, 0, 0},
                           std::array<std::uint8_t, 4>{0xFF, 0xFF, 0xFF, 0xFF}, mask,
                           std::array<std::uint8_t, 4>{1, 2, 3, 4}}) {
        for (std::size_t n = 0; n <= 40; ++n) {
            CAPTURE(n);
            const std::string payload = pattern(n);
            std::string buffer = masked(ws_opcode::binary, payload, true, key);
            if (n > 0 && key != std::array<std::uint8_t, 4>{0, 0, 0, 0})
                CHECK(buffer.substr(6) != payload);
            ws_decoder decoder;
            const ws_frame f = decoder.next(buffer, 1000);
            REQUIRE(f.what == ws_frame::kind::message);
            CHECK(f.payload == payload);
        }
    }
    // RFC 6455 §5.7: a single-frame masked text message.
    std::string hello = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    ws_decoder decoder;
    const ws_frame f = decoder.next(hello, 1000);
    REQUIRE(f.what == ws_frame::kind::message);
    CHECK(f.payload == "Hello");
    CHECK(text("Hello") ==
          bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST_CASE("websocket frames: protocol errors are refused with 1002") {
    const std::string valid = text("ok");
    const auto with_first_byte = [](std::string frame, int b0) {
        frame[0] = static_cast<char>(b0);
        return frame;
    };
    struct bad {
        const char* what;
        std::string bytes;
    };
    std::string unmasked = valid;
    unmasked[1] = static_cast<char>(unmasked[1] & 0x7F);
    std::vector<bad> cases{
        {"unmasked", unmasked},
        {"RSV1", with_first_byte(valid, 0x81 | 0x40)},
        {"RSV2", with_first_byte(valid, 0x81 | 0x20)},
        {"RSV3", with_first_byte(valid, 0x81 | 0x10)},
        {"ping without FIN", masked(ws_opcode::ping, "x", false)},
        {"close without FIN", masked(ws_opcode::close, "", false)},
        {"ping of 126 bytes", ping(std::string(126, 'p'))},
        {"continuation first", more("x")},
        {"continuation after a whole message", text("a") + more("b")},
        {"text inside a text", text("a", false) + text("b")},
        {"binary inside a text", text("a", false) + ping("") + binary("b")},
        {"length 126 form for 5 bytes", bytes({0x82, 0xFE, 0, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0})},
        {"length 127 form for 65535 bytes",
         bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4})},
        {"length with the top bit set", bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})},
        {"close with a one-byte body", masked(ws_opcode::close, "x")},
    };
    for (const int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
        cases.push_back({"unknown opcode", with_first_byte(valid, 0x80 | op)});
    for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535})
        cases.push_back({"close code", close_frame(static_cast<std::uint16_t>(code))});
    for (const auto& c : cases) {
        CAPTURE(c.what);
        CAPTURE(c.bytes.size());
        const decoded d = decode(c.bytes);
        CHECK(d.refused == 1002);
        CHECK_FALSE(d.reason.empty());
        CHECK(decode(c.bytes, 1).refused == 1002);
    }
}

TEST_CASE("websocket frames: the close codes a client may send are accepted, with their reason") {
    for (const std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999}) {
        CAPTURE(code);
        const decoded d = decode(close_frame(code, "why \xC3\xA9"));
        CHECK(d.refused == 0);
        CHECK(d.events ==
              std::vector<std::string>{"close " + std::to_string(code) + ":why \xC3\xA9"});
    }
    // No body: 1005, "no status".
    CHECK(decode(masked(ws_opcode::close, "")).events == std::vector<std::string>{"close 1005:"});
    CHECK(decode(close_frame(1000, "\xC3")).refused == 1007);
}

TEST_CASE(
    "websocket frames: a message over max_message_bytes is refused with 1009 from its header") {
    constexpr std::size_t max = 1000;
    CHECK(decode(binary(pattern(1000)), SIZE_MAX, max).refused == 0);
    // Only the header is there: refused at once, nothing of the payload buffered.
    for (const std::size_t n : {1001, 65536, 70000}) {
        CAPTURE(n);
        const std::string frame = binary(pattern(n));
        const std::size_t length_bytes = n <= 65535 ? 4 : 10;
        std::string buffer = frame.substr(0, length_bytes);
        ws_decoder decoder;
        const ws_frame f = decoder.next(buffer, max);
        CHECK(f.what == ws_frame::kind::refused);
        CHECK(f.close_code == 1009);
    }
    // An announced 2^40 bytes: refused from ten bytes.
    std::string huge = bytes({0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0});
    ws_decoder decoder;
    CHECK(decoder.next(huge, max).close_code == 1009);
    // Fragments count together: 600 + 400 fit, 600 + 401 do not, and the second header is
    // enough to know it.
    CHECK(decode(text(std::string(600, 'a'), false) + more(std::string(400, 'b')), SIZE_MAX, max)
              .events.size() == 1);
    const std::string over = text(std::string(600, 'a'), false) + more(std::string(401, 'b'));
    const decoded d = decode(std::string_view{over}.substr(0, 608 + 4), SIZE_MAX, max);
    CHECK(d.refused == 1009);
    // Control frames between the fragments do not count.
    CHECK(decode(text(std::string(999, 'a'), false) + ping(std::string(125, 'p')) + more("b"),
                 SIZE_MAX, max)
              .events.size() == 2);
    check_every_split(over, {}, 1009, max);
}

TEST_CASE("websocket frames: text that is not UTF-8 is refused with 1007, binary is not") {
    CHECK(decode(text("ab\xFF")).refused == 1007);
    CHECK(decode(text("\xC0\x80")).refused == 1007);          // overlong
    CHECK(decode(text("\xED\xA0\x80")).refused == 1007);      // surrogate
    CHECK(decode(text("\xF4\x90\x80\x80")).refused == 1007);  // past U+10FFFF
    CHECK(decode(binary("ab\xFF")).events == std::vector<std::string>{"binary:ab\xFF"});
    // A message that ends inside a character, whole or in fragments.
    CHECK(decode(text("ab\xC3")).refused == 1007);
    CHECK(decode(text("ab", false) + more("\xE2\x82", false) + more("")).refused == 1007);
    // Refused at the fragment that breaks it, before the message ends.
    CHECK(decode(text("ok", false) + more("\xC3\x28", false)).refused == 1007);
    // A character split between fragments, and between reads, is fine.
    const std::string euro = "\xE2\x82\xAC";
    check_every_split(text("\xE2", false) + ping("") + more("\x82", false) + more("\xAC"),
                      {"ping:", "text:" + euro});
    check_every_split(text("\xF0\x9F", false) + more("\x98\x80"), {"text:\xF0\x9F\x98\x80"});
}

TEST_CASE(
    "websocket frames: empty fragments and control frames inside a message leave no "
    "growing gap behind") {
    constexpr std::size_t max = 4096;
    std::string input = text("start", false);
    for (int i = 0; i < 3000; ++i) input += i % 3 == 0 ? ping("keepalive") : more("", false);
    input += more("end");
    const decoded d = decode(input, 61, max);
    REQUIRE(d.refused == 0);
    CHECK(d.events.back() == "text:startend");
    CHECK(d.events.size() == 1001);
    // The buffer holds what is kept plus one read, however long the message went on.
    CHECK(d.most_buffered <= ws_decoder::most_kept(max) + 61);
    CHECK(d.most_buffered < 200);
}

TEST_CASE("websocket frames: the server's frame headers have 2, 4 or 10 bytes") {
    const auto header = [](ws_opcode op, std::uint64_t size, bool fin = true) {
        std::string out;
        plugd::append_frame_header(out, op, size, fin);
        return out;
    };
    CHECK(header(ws_opcode::text, 0) == bytes({0x81, 0}));
    CHECK(header(ws_opcode::binary, 125) == bytes({0x82, 125}));
    CHECK(header(ws_opcode::binary, 126) == bytes({0x82, 126, 0, 126}));
    CHECK(header(ws_opcode::binary, 65535) == bytes({0x82, 126, 0xFF, 0xFF}));
    CHECK(header(ws_opcode::binary, 65536) == bytes({0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
    CHECK(header(ws_opcode::text, 0x0102030405060708) ==
          bytes({0x81, 127, 1, 2, 3, 4, 5, 6, 7, 8}));
    CHECK(header(ws_opcode::text, 3, false) == bytes({0x01, 3}));
    CHECK(header(ws_opcode::continuation, 3) == bytes({0x80, 3}));
    std::array<char, plugd::ws_max_header_bytes> raw{};
    CHECK(plugd::write_frame_header(raw, ws_opcode::ping, 5) == 2);
    CHECK(plugd::write_frame_header(raw, ws_opcode::binary, 300) == 4);
    CHECK(plugd::write_frame_header(raw, ws_opcode::binary, 1 << 20) == 10);
}

TEST_CASE("websocket frames: close, ping and pong frames as the server writes them") {
    std::string out;
    plugd::append_close(out, 1000, "bye");
    CHECK(out == bytes({0x88, 5, 0x03, 0xE8}) + "bye");
    out.clear();
    plugd::append_close(out, 1005);
    CHECK(out == bytes({0x88, 0}));
    out.clear();
    plugd::append_close(out, 1009);
    CHECK(out == bytes({0x88, 2, 0x03, 0xF1}));
    // A reason longer than 123 bytes is cut there, but never inside a character.
    out.clear();
    std::string reason(122, 'r');
    reason += "\xC3\xA9tail";
    plugd::append_close(out, 1000, reason);
    CHECK(out.size() == 2 + 2 + 122);
    CHECK(out.substr(4) == std::string(122, 'r'));
    out.clear();
    plugd::append_close(out, 1000, std::string(200, 'r'));
    CHECK(out.size() == 2 + 125);
    CHECK(static_cast<unsigned char>(out[1]) == 125);
    out.clear();
    plugd::append_ping(out);
    plugd::append_pong(out, "echo");
    CHECK(out == bytes({0x89, 0, 0x8A, 4}) + "echo");
    out.clear();
    plugd::append_pong(out, std::string(200, 'x'));
    CHECK(out.size() == 2 + 125);
}

TEST_CASE("websocket frames: the codes a close frame may carry") {
    for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                           3000, 3999, 4000, 4999})
        CHECK(plugd::ws_close_code_allowed(static_cast<std::uint16_t>(code)));
    for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        CHECK_FALSE(plugd::ws_close_code_allowed(static_cast<std::uint16_t>(code)));
}
