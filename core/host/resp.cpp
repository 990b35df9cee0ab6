// resp: RESP2 commands encoded, replies and pushes decoded with caps.
#include "host/resp.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace plugd::resp {
namespace {

void append_header(std::string& out, char kind, std::size_t n) {
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    out += kind;
    out.append(digits, end);
    out += "\r\n";
}

std::string shown(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string{"'"} + c + "'";
    static constexpr char hex[] = "0123456789abcdef";
    return std::string{"0x"} + hex[u >> 4] + hex[u & 15];
}

}  // namespace

void append_command(std::string& out, std::span<const std::string_view> args) {
    append_header(out, '*', args.size());
    for (const std::string_view a : args) {
        append_header(out, '$', a.size());
        out += a;
        out += "\r\n";
    }
}

std::optional<value> reader::next(std::string_view bytes, std::size_t& consumed) const {
    std::size_t at = 0;
    auto v = parse(bytes, at, 0);
    consumed = v ? at : 0;
    return v;
}

// The line starting at `at` without its CRLF, `at` moved past it; nothing while its end has
// not arrived.
std::optional<std::string_view> reader::line(std::string_view bytes, std::size_t& at) const {
    const std::string_view rest = bytes.substr(at);
    // Looked for only as far as a line may go: a long bulk string after it is not scanned.
    const std::size_t end = rest.substr(0, max_bytes_ + 2).find_first_of("\r\n");
    if (end != std::string_view::npos && rest[end] == '\n')
        throw protocol_error("RESP: a line ends without CRLF");
    const std::size_t length =
        end == std::string_view::npos ? std::min(rest.size(), max_bytes_ + 2) : end;
    if (length > max_bytes_)
        throw protocol_error("RESP: a line longer than " + std::to_string(max_bytes_) + " bytes");
    if (end == std::string_view::npos || end + 1 == rest.size()) return std::nullopt;
    if (rest[end + 1] != '\n') throw protocol_error("RESP: a line ends without CRLF");
    at += end + 2;
    return rest.substr(0, end);
}

// An integer's or a length's digits: an optional '-', then 1 to 19 decimal digits.
std::int64_t reader::number(std::string_view digits, char kind) const {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
        digits.front() == '+')
        throw protocol_error(std::string{"RESP: after "} + shown(kind) +
                             " a number was expected, got \"" + std::string{digits.substr(0, 32)} +
                             "\"");
    return n;
}

std::optional<value> reader::parse(std::string_view bytes, std::size_t& at,
                                   std::size_t depth) const {
    if (at >= bytes.size()) return std::nullopt;
    const char kind = bytes[at];
    std::size_t after = at + 1;
    const auto head = line(bytes, after);
    if (!head) return std::nullopt;
    value v;
    switch (kind) {
        case '+':
            v.type = value::kind::simple;
            v.text = *head;
            break;
        case '-':
            v.type = value::kind::error;
            v.text = *head;
            break;
        case ':':
            v.type = value::kind::integer;
            v.integer = number(*head, kind);
            break;
        case '$': {
            const std::int64_t n = number(*head, kind);
            if (n == -1) break;  // null
            if (n < 0 || static_cast<std::uint64_t>(n) > max_bytes_)
                throw protocol_error("RESP: a bulk string of " + std::to_string(n) +
                                     " bytes (at most " + std::to_string(max_bytes_) + ")");
            const auto size = static_cast<std::size_t>(n);
            if (bytes.size() - after < size + 2) return std::nullopt;
            if (bytes[after + size] != '\r' || bytes[after + size + 1] != '\n')
                throw protocol_error("RESP: a bulk string not followed by CRLF");
            v.type = value::kind::bulk;
            v.text = bytes.substr(after, size);
            after += size + 2;
            break;
        }
        case '*': {
            const std::int64_t n = number(*head, kind);
            if (n == -1) break;  // null
            if (n < 0 || static_cast<std::uint64_t>(n) > max_items_)
                throw protocol_error("RESP: an array of " + std::to_string(n) +
                                     " elements (at most " + std::to_string(max_items_) + ")");
            if (depth + 1 > max_depth_)
                throw protocol_error("RESP: arrays nested deeper than " +
                                     std::to_string(max_depth_));
            v.type = value::kind::array;
            for (std::int64_t i = 0; i < n; ++i) {
                auto item = parse(bytes, after, depth + 1);
                if (!item) return std::nullopt;
                v.items.push_back(std::move(*item));
            }
            break;
        }
        default:
            throw protocol_error("RESP: a value cannot start with " + shown(kind));
    }
    at = after;
    return v;
}

}  // namespace plugd::resp
