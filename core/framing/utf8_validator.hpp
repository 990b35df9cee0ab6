// utf8_validator: whether bytes are UTF-8 (RFC 3629), checked piece by piece as they arrive:
// a WebSocket text message is checked fragment by fragment, read by read, never rescanned.
#pragma once

#include <cstdint>
#include <string_view>

namespace plugd {

/// An incremental UTF-8 check (RFC 3629 §4): refuses overlong forms, surrogates (U+D800 to
/// U+DFFF), code points above U+10FFFF and the bytes C0, C1 and F5 to FF. Its state, one
/// byte, carries a character split between two pieces. A refusal is final: every later
/// feed() returns false until reset(). Allocation-free; not thread-safe (one per text).
class utf8_validator {
  public:
    /// Checks `bytes` as what follows everything fed since the last reset(). False when a
    /// byte can no longer be part of valid UTF-8; a character cut at the end is fine
    /// (complete() tells).
    bool feed(std::string_view bytes) noexcept;
    /// Whether what was fed so far ends between two characters: a whole text.
    bool complete() const noexcept { return state_ == 0; }
    void reset() noexcept { state_ = 0; }

  private:
    std::uint8_t state_ = 0;  ///< a state of the automaton in utf8_validator.cpp; 0: between
};

/// Whether `text` is whole, valid UTF-8.
bool valid_utf8(std::string_view text) noexcept;

}  // namespace plugd
