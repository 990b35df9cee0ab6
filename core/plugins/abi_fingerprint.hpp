// The ABI fingerprint check: compares a plugin's fingerprint with the core's, part by part.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace plugd {

/// The fingerprint this core was built with (PLUGD_ABI_FINGERPRINT).
std::string_view core_abi_fingerprint() noexcept;

/// Returns nullopt when `plugin` can be loaded by `core`: every part equal, except that the
/// plugin's SDK minor may be older than the core's (see version.hpp). Otherwise a message
/// naming every part that differs with both values, e.g. `boost: plugin 108000, plugd
/// 108100`, and for a newer SDK minor, which version the plugin needs.
std::optional<std::string> abi_mismatch(std::string_view plugin, std::string_view core);

/// The SDK minor a fingerprint records (0 when it records none): what the core may call.
unsigned long sdk_minor_of(std::string_view fingerprint);

}  // namespace plugd
