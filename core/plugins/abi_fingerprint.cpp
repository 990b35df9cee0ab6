// The ABI fingerprint check.
#include "plugins/abi_fingerprint.hpp"

#include <map>
#include <optional>
#include <utility>

#include <plugd/version.hpp>

namespace plugd {
namespace {

std::map<std::string, std::string, std::less<>> parts_of(std::string_view fingerprint) {
    std::map<std::string, std::string, std::less<>> parts;
    while (!fingerprint.empty()) {
        const auto end = fingerprint.find(';');
        const std::string_view part = fingerprint.substr(0, end);
        const auto eq = part.find('=');
        parts[std::string{part.substr(0, eq)}] =
            eq == std::string_view::npos ? "" : std::string{part.substr(eq + 1)};
        if (end == std::string_view::npos) break;
        fingerprint.remove_prefix(end + 1);
    }
    return parts;
}

// "1.1" (or "1", an SDK from before minors were recorded: 1.0) as {major, minor}.
std::optional<std::pair<unsigned long, unsigned long>> sdk_version(std::string_view text) {
    const auto dot = text.find('.');
    const std::string major{text.substr(0, dot)};
    const std::string minor{dot == std::string_view::npos ? "0" : text.substr(dot + 1)};
    const auto digits = [](const std::string& s) {
        return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!digits(major) || !digits(minor)) return std::nullopt;
    return std::pair{std::stoul(major), std::stoul(minor)};
}

// The sdk part follows the SDK's growth rule (see version.hpp): same major, and a minor
// no newer than the core's. Returns the text for a mismatch, or nullopt.
std::optional<std::string> sdk_mismatch(std::string_view plugin, std::string_view core) {
    const auto p = sdk_version(plugin);
    const auto c = sdk_version(core);
    if (p && c && p->first == c->first) {
        if (p->second <= c->second) return std::nullopt;
        return "sdk: plugin " + std::string{plugin} + ", plugd " + std::string{core} +
               ": the plugin needs SDK " + std::string{plugin} +
               " facilities this plugd lacks; upgrade plugd to one with SDK " +
               std::string{plugin} + " or newer";
    }
    return "sdk: plugin " + (plugin.empty() ? std::string{"(none)"} : std::string{plugin}) +
           ", plugd " + std::string{core};
}

// The -std flag that gives __cplusplus `value` ("202002L"), for a mismatch a user must fix
// in their build; empty when the value is none we know.
std::string std_flag(std::string_view value) {
    const std::string digits{value.substr(0, value.find_first_not_of("0123456789"))};
    if (digits.empty() || digits.size() > 9) return {};
    const unsigned long v = std::stoul(digits);
    if (v >= 202400) return "-std=c++26";
    if (v > 202002) return "-std=c++23";  // GCC 11-13 say 202100 for -std=c++23 (c++2b)
    if (v > 201703) return "-std=c++20";
    if (v > 201402) return "-std=c++17";
    if (v > 201103) return "-std=c++14";
    return {};
}

}  // namespace

std::string_view core_abi_fingerprint() noexcept {
    return PLUGD_ABI_FINGERPRINT;
}

unsigned long sdk_minor_of(std::string_view fingerprint) {
    const auto parts = parts_of(fingerprint);
    const auto it = parts.find("sdk");
    if (it == parts.end()) return 0;
    const auto version = sdk_version(it->second);
    return version ? version->second : 0;
}

std::optional<std::string> abi_mismatch(std::string_view plugin, std::string_view core) {
    if (plugin == core) return std::nullopt;
    const auto mine = parts_of(core);
    const auto theirs = parts_of(plugin);
    std::string diff;
    auto add = [&](std::string_view key, std::string_view p, std::string_view c) {
        diff += (diff.empty() ? "" : "; ") + std::string{key} + ": plugin " +
                (p.empty() ? "(none)" : std::string{p}) + ", plugd " +
                (c.empty() ? "(none)" : std::string{c});
    };
    for (const auto& [key, value] : mine) {
        auto it = theirs.find(key);
        if (key == "sdk") {
            if (auto why = sdk_mismatch(it == theirs.end() ? "" : it->second, value)) {
                diff += (diff.empty() ? "" : "; ") + *why;
            }
        } else if (it == theirs.end()) {
            add(key, "", value);
        } else if (it->second != value) {
            add(key, it->second, value);
            // The standard is a build flag: say which one to change.
            if (key == "cxx" && !std_flag(it->second).empty() && !std_flag(value).empty()) {
                diff += ": the plugin was compiled with " + std_flag(it->second) + ", plugd with " +
                        std_flag(value) + "; build the plugin with " + std_flag(value) +
                        " (plugd_add_plugin() sets it)";
            }
        }
    }
    for (const auto& [key, value] : theirs) {
        if (!mine.contains(key)) add(key, value, "");
    }
    if (diff.empty()) return std::nullopt;  // only a compatible SDK minor differs
    return diff;
}

}  // namespace plugd
