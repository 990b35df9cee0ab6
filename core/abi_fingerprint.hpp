// The ABI fingerprint check: compares a plugin's fingerprint with the core's, part by part.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace plugd {

/// The fingerprint this core was built with (PLUGD_ABI_FINGERPRINT).
std::string_view core_abi_fingerprint() noexcept;

/// Returns nullopt when `plugin` equals `core`; otherwise a message naming every part that
/// differs with both values, e.g. `boost: plugin 108000, plugd 108100`.
std::optional<std::string> abi_mismatch(std::string_view plugin, std::string_view core);

}  // namespace plugd
