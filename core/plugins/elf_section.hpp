// Reads a named section out of an ELF shared object held in memory, without loading it.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace plugd {

/// The bytes are not a 64-bit little-endian ELF shared object (or are truncated/corrupt).
class not_a_shared_library : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Returns the contents of section `name` in `image` (a whole ELF file), or nullopt when the
/// object has no such section. Throws not_a_shared_library, saying why, when `image` is not
/// an ELF shared object this server could load. Never reads outside `image`.
std::optional<std::string_view> elf_section(std::string_view image, std::string_view name);

}  // namespace plugd
