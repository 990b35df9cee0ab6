// request_path: percent-decoding and dot-segment removal (RFC 3986 §5.2.4) in one pass.
#include "routing/request_path.hpp"

namespace plugd {
namespace {

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Appends `in` percent-decoded to `out`; false on a malformed or NUL escape.
bool append_decoded(std::string_view in, std::string& out) {
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

// The path-and-query part of `target`; false when it is in neither origin nor absolute form.
bool path_and_query(std::string_view target, std::string_view& rest) {
    if (target.starts_with('/')) {
        rest = target;
        return true;
    }
    // Absolute form (RFC 9112 §3.2.2): scheme "://" authority path-abempty [ "?" query ].
    const auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) return false;
    const auto path_start = target.find_first_of("/?", scheme_end + 3);
    if (path_start == std::string_view::npos) {
        rest = "/";
        return true;
    }
    rest = target.substr(path_start);
    if (rest.starts_with('?')) return false;  // "http://h?q": no path to route; refuse
    return true;
}

}  // namespace

std::size_t normalize_target(std::string_view target, std::string& out) {
    out.clear();
    std::string_view rest;
    if (!path_and_query(target, rest)) return std::string_view::npos;
    const auto query_at = rest.find('?');
    const std::string_view path = rest.substr(0, query_at);
    // Decode first, then resolve segments: "%2e%2e" is "..", and "%2F" a separator, as
    // the plugin that reads the decoded path will understand them.
    if (!append_decoded(path, out)) return std::string_view::npos;
    // Resolve in place: `w` is where the next output segment goes.
    std::size_t w = 0;
    const std::size_t n = out.size();
    for (std::size_t r = 0; r < n;) {
        // out[r] == '/' here: read the segment after it.
        std::size_t end = out.find('/', r + 1);
        if (end == std::string::npos) end = n;
        const std::string_view segment{out.data() + r + 1, end - r - 1};
        const bool last = end == n;
        if (segment.empty() && !last) {
            // "//": merged
        } else if (segment == ".") {
            if (last) out[w++] = '/';
        } else if (segment == "..") {
            if (w == 0) return std::string_view::npos;  // above the root
            while (w > 0 && out[--w] != '/') {
            }
            if (last) out[w++] = '/';
        } else {
            out[w++] = '/';
            for (std::size_t i = r + 1; i < end; ++i) out[w++] = out[i];
        }
        r = end;
    }
    if (w == 0) out[w++] = '/';
    out.resize(w);
    const std::size_t path_length = w;
    if (query_at != std::string_view::npos) {
        out += '?';
        if (!append_decoded(rest.substr(query_at + 1), out)) return std::string_view::npos;
    }
    return path_length;
}

std::string_view request_host(std::string_view target, std::string_view host_field,
                              std::string& buffer) {
    std::string_view host = host_field;
    if (const auto scheme_end = target.find("://");
        !target.starts_with('/') && scheme_end != std::string_view::npos) {
        host = target.substr(scheme_end + 3);
        host = host.substr(0, host.find_first_of("/?"));
        if (const auto at = host.rfind('@'); at != std::string_view::npos)
            host.remove_prefix(at + 1);
    }
    // Without the port: "h:80", "[::1]:80".
    if (host.starts_with('[')) {
        host = host.substr(0, host.find(']') + 1);
    } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
        host = host.substr(0, colon);
    }
    if (host.ends_with('.')) host.remove_suffix(1);  // "example.com." is example.com
    bool lower = true;
    for (char c : host) lower = lower && !(c >= 'A' && c <= 'Z');
    if (lower) return host;
    buffer.assign(host);
    for (char& c : buffer)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return buffer;
}

}  // namespace plugd
