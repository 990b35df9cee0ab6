// utf8_validator: the automaton against a plain decoding of RFC 3629 (support/
// utf8_reference.hpp) on every sequence of up to three bytes and a sample of four, whole
// and fed a byte at a time.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "framing/utf8_validator.hpp"
#include "utf8_reference.hpp"

namespace {

using plugd::test::reference_utf8;
using plugd::test::utf8_verdict;

// What the validator says of `s`, in the reference's terms.
utf8_verdict validator_verdict(std::string_view s) {
    plugd::utf8_validator v;
    if (!v.feed(s)) return utf8_verdict::invalid;
    return v.complete() ? utf8_verdict::whole : utf8_verdict::cut;
}

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (const int b : list) s += static_cast<char>(b);
    return s;
}

// UTF-8 of `cp`, written out by hand (surrogates included, which UTF-8 forbids).
std::string encode(std::uint32_t cp) {
    if (cp < 0x80) return bytes({int(cp)});
    if (cp < 0x800) return bytes({0xC0 | int(cp >> 6), 0x80 | int(cp & 0x3F)});
    if (cp < 0x10000)
        return bytes({0xE0 | int(cp >> 12), 0x80 | int((cp >> 6) & 0x3F), 0x80 | int(cp & 0x3F)});
    return bytes({0xF0 | int(cp >> 18), 0x80 | int((cp >> 12) & 0x3F), 0x80 | int((cp >> 6) & 0x3F),
                  0x80 | int(cp & 0x3F)});
}

}  // namespace

TEST_CASE("utf8: every sequence of one to three bytes is judged as RFC 3629 says") {
    std::size_t disagreements = 0;
    std::string s;
    for (int length = 1; length <= 3; ++length) {
        const std::uint32_t count = 1u << (8 * length);
        for (std::uint32_t n = 0; n < count; ++n) {
            s.clear();
            for (int k = length - 1; k >= 0; --k) s += static_cast<char>((n >> (8 * k)) & 0xFF);
            if (validator_verdict(s) != reference_utf8(s) && ++disagreements < 10) {
                CAPTURE(n);
                CAPTURE(length);
                CHECK(validator_verdict(s) == reference_utf8(s));
            }
        }
    }
    CHECK(disagreements == 0);
}

TEST_CASE("utf8: four-byte sequences, every first two bytes with boundary tails") {
    const std::array<int, 7> tails{0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0};
    std::size_t disagreements = 0;
    for (int b0 = 0; b0 < 256; ++b0)
        for (int b1 = 0; b1 < 256; ++b1)
            for (const int b2 : tails)
                for (const int b3 : tails) {
                    const std::string s = bytes({b0, b1, b2, b3});
                    if (validator_verdict(s) != reference_utf8(s)) ++disagreements;
                }
    CHECK(disagreements == 0);
}

TEST_CASE("utf8: every code point is valid except the surrogates, fed whole or byte by byte") {
    std::size_t wrong = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const std::string s = encode(cp);
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        plugd::utf8_validator bytewise;
        bool ok = true;
        for (const char c : s) ok = bytewise.feed({&c, 1}) && ok;
        ok = ok && bytewise.complete();
        if (plugd::valid_utf8(s) == surrogate || ok == surrogate) ++wrong;
    }
    CHECK(wrong == 0);
}

TEST_CASE(
    "utf8: overlong forms, surrogates, code points past U+10FFFF and stray bytes are refused") {
    for (const std::string& bad :
         {bytes({0xC0, 0x80}), bytes({0xC1, 0xBF}), bytes({0xE0, 0x80, 0x80}),
          bytes({0xE0, 0x9F, 0xBF}), bytes({0xF0, 0x80, 0x80, 0x80}),
          bytes({0xF0, 0x8F, 0xBF, 0xBF}), bytes({0xED, 0xA0, 0x80}), bytes({0xED, 0xBF, 0xBF}),
          bytes({0xF4, 0x90, 0x80, 0x80}), bytes({0xF5, 0x80, 0x80, 0x80}), bytes({0xFF}),
          bytes({0x80}), bytes({0xBF}), bytes({0xC2, 0x41}), bytes({0xE1, 0x80, 0x41})}) {
        CAPTURE(bad);
        CHECK_FALSE(plugd::valid_utf8(bad));
        CHECK_FALSE(plugd::valid_utf8("plain ASCII first " + bad));
    }
    // The largest and smallest of each length are fine.
    for (const std::string& good :
         {bytes({0x7F}), bytes({0xC2, 0x80}), bytes({0xDF, 0xBF}), bytes({0xE0, 0xA0, 0x80}),
          bytes({0xED, 0x9F, 0xBF}), bytes({0xEE, 0x80, 0x80}), bytes({0xEF, 0xBF, 0xBF}),
          bytes({0xF0, 0x90, 0x80, 0x80}), bytes({0xF4, 0x8F, 0xBF, 0xBF})}) {
        CAPTURE(good);
        CHECK(plugd::valid_utf8(good));
    }
}

TEST_CASE("utf8: a character split between pieces is valid once whole, and a refusal stays") {
    const std::string text = "h\xC3\xA9llo \xF0\x9F\x98\x80 w\xE2\x82\xACrld and more ASCII after";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        CAPTURE(cut);
        plugd::utf8_validator v;
        CHECK(v.feed(std::string_view{text}.substr(0, cut)));
        CHECK(v.feed(std::string_view{text}.substr(cut)));
        CHECK(v.complete());
    }
    plugd::utf8_validator v;
    CHECK(v.feed("ab\xF0\x9F"));
    CHECK_FALSE(v.complete());
    CHECK_FALSE(v.feed("A"));  // the emoji never finished
    CHECK_FALSE(v.feed("fine ASCII"));
    v.reset();
    CHECK(v.feed("fine ASCII"));
    CHECK(v.complete());
}
