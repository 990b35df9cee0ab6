// The one header a plugin includes: the whole plugd SDK and the PLUGD_PLUGIN export macro.
#pragma once

#include <plugd/connection.hpp>
#include <plugd/context.hpp>
#include <plugd/handler.hpp>
#include <plugd/reply.hpp>
#include <plugd/request.hpp>
#include <plugd/shared_map.hpp>
#include <plugd/stream.hpp>
#include <plugd/task.hpp>
#include <plugd/version.hpp>

/// Exports `type` (a `plugd::handler` constructible from `plugd::context&`) as this
/// library's plugin. Use it exactly once, at namespace scope, in one source file.
///
/// It emits the only two symbols of the plugin's own code that are exported: the ABI
/// fingerprint, in the `.plugd_abi` section where the core reads it before loading the
/// file, and the factory the core calls. It also reserves the `.plugd_seal` section (not
/// exported), which plugd_add_plugin() fills after linking so that a file that is half old
/// and half new build is refused instead of loaded. (Boost's headers add a few vague-linkage
/// symbols that Boost marks visible on purpose, such as the type_info of
/// boost::system::system_error and Asio's per-thread call stack: they let exceptions and Asio's
/// coroutine frame cache work across the boundary, and bind to the core's own copies.)
#define PLUGD_PLUGIN(type)                                                                  \
    extern "C" __attribute__((visibility("default"), used, section(".plugd_abi")))          \
    const char plugd_abi_fingerprint[] = PLUGD_ABI_FINGERPRINT;                             \
    extern "C" __attribute__((visibility("hidden"), used, retain, section(".plugd_seal")))  \
    const char plugd_seal[PLUGD_SEAL_SIZE] = PLUGD_UNSEALED;                                \
    extern "C" __attribute__((visibility("default"))) ::plugd::handler* plugd_make_handler( \
        ::plugd::context& ctx) {                                                            \
        return new type(ctx);                                                               \
    }
