// plugin_seal: a checksum a plugin carries over its own loadable bytes, so a file that is
// half one build and half another (rewritten in place while plugd read it) is refused
// before dlopen, while a stripped one still loads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace plugd {

/// FNV-1a over `bytes`, continuing from `h`: stable across runs and builds. Not a defence
/// against tampering (whoever can write a plugin file can run code in plugd anyway), but
/// any two different builds, or pieces of them, hash differently in practice.
std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = 14695981039346656037ull) noexcept;

/// Why `image` (a whole plugin file) does not match its seal, or nullopt when it does or
/// carries none (a library built without plugd_add_plugin, or by an older SDK, is not
/// sealed: its completeness is still checked, but a splice cannot be detected).
/// Throws not_a_shared_library when `image` is no ELF shared object.
std::optional<std::string> seal_mismatch(std::string_view image);

/// Seals the plugin at `file` in place (what `plugd --seal`, run by plugd_add_plugin()
/// after each link, does). Returns a message for the user; throws std::runtime_error saying
/// what went wrong. A library without a seal section is left alone (and said so).
std::string seal_plugin_file(const std::filesystem::path& file);

}  // namespace plugd
