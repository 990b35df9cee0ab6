// shared_map_rules: the messages and the integer rule both maps share.
#include "host/shared_map_rules.hpp"

#include <charconv>

namespace plugd::shared_map_rules {

std::length_error full(const std::string& owner, std::size_t used, std::size_t budget) {
    return std::length_error("shared state of plugin instance \"" + owner + "\" is full (" +
                             std::to_string(used) + " of " + std::to_string(budget) +
                             " bytes in use): raise /plugins/" + owner +
                             "/shared_bytes, or erase entries or give them a ttl");
}

std::optional<std::int64_t> parse_integer(std::string_view text) noexcept {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return n;
}

std::invalid_argument not_an_integer(const std::string& owner) {
    return std::invalid_argument("shared state of plugin instance \"" + owner +
                                 "\": the value at this key is not a decimal integer");
}

std::invalid_argument would_overflow(const std::string& owner) {
    return std::invalid_argument("shared state of plugin instance \"" + owner +
                                 "\": incrementing would overflow a 64-bit integer");
}

}  // namespace plugd::shared_map_rules
