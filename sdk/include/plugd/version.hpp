// The SDK version and the ABI fingerprint that every plugin carries and the core checks.
#pragma once

#include <boost/version.hpp>
#include <nlohmann/json.hpp>

/// SDK version. The major number changes whenever a plugin built against an older SDK
/// could misbehave in a newer core (any change to a virtual interface in this folder).
#define PLUGD_SDK_VERSION_MAJOR 1
#define PLUGD_SDK_VERSION_MINOR 0

#define PLUGD_STRINGIFY_IMPL(x) #x
#define PLUGD_STRINGIFY(x) PLUGD_STRINGIFY_IMPL(x)

#if defined(__clang__)
#define PLUGD_ABI_COMPILER \
    "clang-" PLUGD_STRINGIFY(__clang_major__) "." PLUGD_STRINGIFY(__clang_minor__)
#elif defined(__GNUC__)
#define PLUGD_ABI_COMPILER "gcc-" PLUGD_STRINGIFY(__GNUC__) "." PLUGD_STRINGIFY(__GNUC_MINOR__)
#else
#error "plugd plugins are built with GCC or Clang"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define PLUGD_ABI_STDLIB "libstdc++-cxx11"
#elif defined(__GLIBCXX__)
#define PLUGD_ABI_STDLIB "libstdc++-cxx98"
#elif defined(_LIBCPP_VERSION)
#define PLUGD_ABI_STDLIB "libc++-" PLUGD_STRINGIFY(_LIBCPP_ABI_VERSION)
#else
#define PLUGD_ABI_STDLIB "unknown"
#endif

/// The ABI fingerprint: every part that must match between a plugin and the core for the
/// virtual interfaces, std::string, nlohmann::json and Boost.Asio awaitables to be shared.
/// Format: `key=value` pairs separated by `;`. The core compares it part by part and names
/// the part that differs. It is stored in the plugin's `.plugd_abi` ELF section so the core
/// can read it from the file before loading the library.
#define PLUGD_ABI_FINGERPRINT \
    "sdk=" PLUGD_STRINGIFY(PLUGD_SDK_VERSION_MAJOR) ";compiler=" PLUGD_ABI_COMPILER          \
        ";boost=" PLUGD_STRINGIFY(BOOST_VERSION) ";stdlib=" PLUGD_ABI_STDLIB                 \
        ";json=" PLUGD_STRINGIFY(NLOHMANN_JSON_VERSION_MAJOR) "." PLUGD_STRINGIFY(         \
            NLOHMANN_JSON_VERSION_MINOR) ";cxx=" PLUGD_STRINGIFY(__cplusplus)

/// The `.plugd_seal` section every plugin reserves (see PLUGD_PLUGIN): unsealed as built;
/// `plugd --seal`, which plugd_add_plugin() runs after linking, writes a hash of the whole
/// file into it. The core refuses a sealed file whose bytes no longer match it.
#define PLUGD_SEAL_SIZE 32
#define PLUGD_UNSEALED "plugd-seal:unsealed"
