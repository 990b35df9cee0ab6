// The ABI fingerprint check.
#include "abi_fingerprint.hpp"

#include <map>

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

}  // namespace

std::string_view core_abi_fingerprint() noexcept {
    return PLUGD_ABI_FINGERPRINT;
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
        if (it == theirs.end())
            add(key, "", value);
        else if (it->second != value)
            add(key, it->second, value);
    }
    for (const auto& [key, value] : theirs) {
        if (!mine.contains(key)) add(key, value, "");
    }
    if (diff.empty())
        diff = "fingerprints differ: plugin \"" + std::string{plugin} + "\", plugd \"" +
               std::string{core} + "\"";
    return diff;
}

}  // namespace plugd
