// A deterministic automaton over byte classes, written from RFC 3629's syntax (§4):
//   UTF8-1 = 00-7F
//   UTF8-2 = C2-DF tail
//   UTF8-3 = E0 A0-BF tail / E1-EC 2tail / ED 80-9F tail / EE-EF 2tail
//   UTF8-4 = F0 90-BF 2tail / F1-F3 3tail / F4 80-8F 2tail          (tail = 80-BF)
// The restricted second bytes are what exclude overlong forms (E0, F0), surrogates (ED) and
// code points past U+10FFFF (F4); C0, C1 and F5-FF never start a character.
#include "framing/utf8_validator.hpp"

#include <array>
#include <cstddef>
#include <cstring>

namespace plugd {
namespace {

// Byte classes: bytes that every state treats alike.
enum byte_class : std::uint8_t {
    ascii,      // 00-7F
    tail_low,   // 80-8F
    tail_mid,   // 90-9F
    tail_high,  // A0-BF
    never,      // C0-C1, F5-FF
    lead2,      // C2-DF
    lead_e0,    // E0
    lead3,      // E1-EC, EE-EF
    lead_ed,    // ED
    lead_f0,    // F0
    lead4,      // F1-F3
    lead_f4,    // F4
    classes
};

constexpr std::array<std::uint8_t, 256> make_class_table() {
    std::array<std::uint8_t, 256> t{};
    for (int b = 0; b < 256; ++b) {
        t[b] = b < 0x80    ? ascii
               : b < 0x90  ? tail_low
               : b < 0xA0  ? tail_mid
               : b < 0xC0  ? tail_high
               : b < 0xC2  ? never
               : b < 0xE0  ? lead2
               : b == 0xE0 ? lead_e0
               : b == 0xED ? lead_ed
               : b < 0xF0  ? lead3
               : b == 0xF0 ? lead_f0
               : b < 0xF4  ? lead4
               : b == 0xF4 ? lead_f4
                           : never;
    }
    return t;
}
constexpr std::array<std::uint8_t, 256> class_of = make_class_table();

// States: what the next byte must be.
enum state : std::uint8_t {
    between,   // 0: a character may start
    need1,     // one tail byte
    need2,     // two tail bytes
    need3,     // three tail bytes
    after_e0,  // A0-BF, then one tail byte
    after_ed,  // 80-9F, then one tail byte
    after_f0,  // 90-BF, then two tail bytes
    after_f4,  // 80-8F, then two tail bytes
    refused,   // final
    states
};

constexpr std::array<std::array<std::uint8_t, classes>, states> make_transitions() {
    std::array<std::array<std::uint8_t, classes>, states> t{};
    for (auto& row : t) row.fill(refused);
    t[between][ascii] = between;
    t[between][lead2] = need1;
    t[between][lead_e0] = after_e0;
    t[between][lead3] = need2;
    t[between][lead_ed] = after_ed;
    t[between][lead_f0] = after_f0;
    t[between][lead4] = need3;
    t[between][lead_f4] = after_f4;
    for (const std::uint8_t tail : {tail_low, tail_mid, tail_high}) {
        t[need1][tail] = between;
        t[need2][tail] = need1;
        t[need3][tail] = need2;
    }
    t[after_e0][tail_high] = need1;
    t[after_ed][tail_low] = t[after_ed][tail_mid] = need1;
    t[after_f0][tail_mid] = t[after_f0][tail_high] = need2;
    t[after_f4][tail_low] = need2;
    return t;
}
constexpr auto next_state = make_transitions();

}  // namespace

bool utf8_validator::feed(std::string_view bytes) noexcept {
    std::uint8_t s = state_;
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p != end && s != refused) {
        // Text is mostly ASCII: between characters, skip eight such bytes at a time.
        if (s == between) {
            while (end - p >= 8) {
                std::uint64_t word;
                std::memcpy(&word, p, sizeof word);
                if (word & 0x8080808080808080u) break;
                p += 8;
            }
            if (p == end) break;
        }
        s = next_state[s][class_of[static_cast<unsigned char>(*p)]];
        ++p;
    }
    state_ = s;
    return s != refused;
}

bool valid_utf8(std::string_view text) noexcept {
    utf8_validator v;
    return v.feed(text) && v.complete();
}

}  // namespace plugd
