// utf8_reference: a second, deliberately plain reading of RFC 3629, by code points rather
// than by an automaton, to check core/framing/utf8_validator against (unit tests, fuzzers).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace plugd::test {

enum class utf8_verdict {
    invalid,  ///< no continuation can make it valid
    whole,    ///< valid, ending between characters
    cut,      ///< valid so far, ending inside a character
};

/// Decodes `s` character by character. A character cut by the end of `s` is `cut` when some
/// continuation of it is a valid character: its code point lies somewhere in a range, and
/// that range must meet the code points its length may encode.
inline utf8_verdict reference_utf8(std::string_view s) {
    constexpr std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};  // no overlong forms
    for (std::size_t i = 0; i < s.size();) {
        const auto lead = static_cast<std::uint8_t>(s[i]);
        std::size_t length;
        std::uint32_t cp;
        if (lead < 0x80) {
            ++i;
            continue;
        } else if ((lead & 0xE0) == 0xC0) {
            length = 2;
            cp = lead & 0x1F;
        } else if ((lead & 0xF0) == 0xE0) {
            length = 3;
            cp = lead & 0x0F;
        } else if ((lead & 0xF8) == 0xF0) {
            length = 4;
            cp = lead & 0x07;
        } else {
            return utf8_verdict::invalid;
        }
        const std::size_t present = std::min(length, s.size() - i);
        for (std::size_t k = 1; k < present; ++k) {
            const auto tail = static_cast<std::uint8_t>(s[i + k]);
            if ((tail & 0xC0) != 0x80) return utf8_verdict::invalid;
            cp = (cp << 6) | (tail & 0x3F);
        }
        const std::size_t missing_bits = 6 * (length - present);
        std::uint32_t low = cp << missing_bits;
        std::uint32_t high = low | ((std::uint32_t{1} << missing_bits) - 1);
        low = std::max(low, smallest[length]);
        high = std::min<std::uint32_t>(high, 0x10FFFF);
        if (low > high) return utf8_verdict::invalid;
        if (low >= 0xD800 && high <= 0xDFFF) return utf8_verdict::invalid;  // surrogates
        if (present < length) return utf8_verdict::cut;
        i += length;
    }
    return utf8_verdict::whole;
}

}  // namespace plugd::test
