// admin_auth: the Authorization field found in a request head, compared in constant time.
#include "admin/admin_auth.hpp"

#include <cstddef>
#include <optional>

#include "framing/http_framing.hpp"

namespace plugd {
namespace {

std::string_view trimmed(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// The value of the one Authorization field; nullopt when there is none or more than one.
std::optional<std::string_view> authorization(std::string_view head) noexcept {
    std::optional<std::string_view> found;
    std::size_t at = head.find('\n');  // the request line is no field
    while (at != std::string_view::npos) {
        const std::size_t start = at + 1;
        at = head.find('\n', start);
        const std::string_view line =
            head.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start);
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        if (!http_iequals(line.substr(0, colon), "authorization")) continue;
        if (found) return std::nullopt;
        found = trimmed(line.substr(colon + 1));
    }
    return found;
}

}  // namespace

bool same_secret(std::string_view a, std::string_view b) noexcept {
    // Every byte of `b` is looked at whatever `a` holds; no early exit on a difference.
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const unsigned char mine = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        diff |= static_cast<unsigned char>(mine ^ static_cast<unsigned char>(b[i]));
    }
    return diff == 0;
}

bool has_bearer_token(std::string_view head, std::string_view token) noexcept {
    const auto value = authorization(head);
    if (!value) return false;
    constexpr std::string_view scheme = "bearer";  // auth-scheme is case-insensitive
    if (value->size() <= scheme.size() || !http_iequals(value->substr(0, 6), scheme) ||
        ((*value)[6] != ' ' && (*value)[6] != '\t'))
        return false;
    return same_secret(trimmed(value->substr(7)), token);
}

}  // namespace plugd
