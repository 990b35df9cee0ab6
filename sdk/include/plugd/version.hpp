// The SDK version and the ABI fingerprint that every plugin carries and the core checks.
#pragma once

#include <boost/version.hpp>
#include <nlohmann/json.hpp>

/// SDK version, `major.minor`. How the SDK grows without making anyone rebuild (the
/// idea of redismodule.h's API versions and Envoy's ABI version, in C++ terms):
///
/// - **minor**: a facility is added. New virtual functions are only ever *appended* at the
///   end of `plugd::context` (and of the interfaces it returns, such as `shared_map`),
///   whose implementations live in the core alone: the slots an older plugin calls keep
///   their places, so a plugin built against `1.0` loads and runs in a `1.1` core. Data
///   members may be appended at the end of `request` and `reply` (which stay trivially
///   copyable and are read only through inline accessors): an older plugin reads the
///   prefix it knows. A virtual appended at the end of `plugd::handler`, whose
///   implementations live in plugins, is a minor too, because the core calls it only on
///   plugins built against that minor or later (1.3's `serve`: a `raw` listener refuses an
///   older plugin, naming the version it needs). A plugin built against a newer minor
///   than the core could call a slot the core does not have; the core refuses it before
///   loading it, naming the version it needs.
/// - **major**: anything else in a virtual interface changes (a slot removed, reordered
///   or changed), or a type crossing the boundary changes layout. The core refuses plugins of
///   another major.
///
/// History: 1.0 config, log, sleep_for. 1.1 shared (state across reloads), spawn and
/// every (background tasks), offload (blocking work on core threads), connect (outbound
/// TCP with a pool). 1.2 HTTP: `request` method, target, body and header; `reply` status
/// and header. 1.3 whole connections: `handler::serve` and `connection` (framing `raw`),
/// default bodies for `handle` and `serve`; the harness `<plugd/testing.hpp>`; later, within
/// 1.3, PLUGD_PLUGIN also exports which of them the type overrides (read when present). 1.4
/// routes and chains: `handler::filter` and `chain_next`; `request` route, path_rest,
/// attach and attached; `reply` status() and headers() to read what the chain set;
/// outbound TLS: `context::connect(host, port, tls_options)`. 1.5 topics: `context::topics`,
/// `topics` and `subscriber` (publish and subscribe within the process), `connection::next`
/// and `event` (a client's message or a published one, in one wait); WebSocket:
/// `handler::serve_session` and `session`.
#define PLUGD_SDK_VERSION_MAJOR 1
#define PLUGD_SDK_VERSION_MINOR 5

// Test builds fake an older or newer minor to check the rule above; nothing else may.
#ifdef PLUGD_FAKE_SDK_MINOR_FOR_TESTS
#define PLUGD_ABI_SDK_MINOR PLUGD_FAKE_SDK_MINOR_FOR_TESTS
#else
#define PLUGD_ABI_SDK_MINOR PLUGD_SDK_VERSION_MINOR
#endif

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
/// the part that differs; `sdk` (`major.minor`) matches when the majors are equal and the
/// plugin's minor is not above the core's. It is stored in the plugin's `.plugd_abi` ELF
/// section so the core can read it from the file before loading the library.
#define PLUGD_ABI_FINGERPRINT \
    "sdk=" PLUGD_STRINGIFY(PLUGD_SDK_VERSION_MAJOR) "." PLUGD_STRINGIFY(                  \
        PLUGD_ABI_SDK_MINOR) ";compiler=" PLUGD_ABI_COMPILER                                \
        ";boost=" PLUGD_STRINGIFY(BOOST_VERSION) ";stdlib=" PLUGD_ABI_STDLIB                 \
        ";json=" PLUGD_STRINGIFY(NLOHMANN_JSON_VERSION_MAJOR) "." PLUGD_STRINGIFY(         \
            NLOHMANN_JSON_VERSION_MINOR) ";cxx=" PLUGD_STRINGIFY(__cplusplus)

/// The `.plugd_seal` section every plugin reserves (see PLUGD_PLUGIN): unsealed as built;
/// `plugd --seal`, which plugd_add_plugin() runs after linking, writes a hash of what the
/// loader maps into it. The core refuses a sealed file whose code or data no longer match.
#define PLUGD_SEAL_SIZE 32
#define PLUGD_UNSEALED "plugd-seal:unsealed"
