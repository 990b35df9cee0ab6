// shared_map_rules: what every implementation of ctx.shared() agrees on: what an entry
// costs against the byte budget, how integers are read, and the errors a plugin sees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace plugd::shared_map_rules {

/// What an entry costs besides its bytes: the node, the hash bucket, the strings' headers
/// of the in-process map. The shared-memory map charges the same, so one shared_bytes
/// means one capacity whichever map serves it.
inline constexpr std::size_t entry_overhead = 64;

/// An entry's charge against shared_bytes.
constexpr std::size_t cost(std::size_t key, std::size_t value) noexcept {
    return key + value + entry_overhead;
}

/// The error of a write that would exceed the budget (`used` of `budget` bytes in use).
std::length_error full(const std::string& owner, std::size_t used, std::size_t budget);

/// `text` as a decimal 64-bit integer, or nullopt when it is not one (increment's rule).
std::optional<std::int64_t> parse_integer(std::string_view text) noexcept;

/// increment's errors: the value there is not an integer; the sum would overflow.
std::invalid_argument not_an_integer(const std::string& owner);
std::invalid_argument would_overflow(const std::string& owner);

}  // namespace plugd::shared_map_rules
