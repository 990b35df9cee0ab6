// The one header a plugin includes: the whole plugd SDK and the PLUGD_PLUGIN export macro.
#pragma once

#include <plugd/chain.hpp>
#include <plugd/connection.hpp>
#include <plugd/context.hpp>
#include <plugd/event.hpp>
#include <plugd/handler.hpp>
#include <plugd/reply.hpp>
#include <plugd/request.hpp>
#include <plugd/session.hpp>
#include <plugd/shared_map.hpp>
#include <plugd/stream.hpp>
#include <plugd/task.hpp>
#include <plugd/topics.hpp>
#include <plugd/version.hpp>

#include <type_traits>

namespace plugd::detail {

// Which of plugd::handler's entry points a plugin type overrides, found at compile time by
// PLUGD_PLUGIN so the core can refuse, at -t, start and reload, a listener whose plugin
// would only answer "this plugin serves whole connections only" (a `handle` declared with
// another signature hides handler's instead of overriding it, and compiles silently
// without `override`).
inline constexpr unsigned answers_requests = 1;    ///< overrides handle(request, reply&)
inline constexpr unsigned serves_connections = 2;  ///< overrides serve(connection&)
inline constexpr unsigned filters = 4;  ///< overrides filter(request, reply&, chain_next) (1.4)
inline constexpr unsigned serves_sessions = 8;  ///< overrides serve_session(session&) (1.5)

template <class Member>
struct member_pointer;
template <class Function, class Owner>
struct member_pointer<Function Owner::*> {
    using function = Function;
    using owner = Owner;
};

// An override may add `noexcept`, which is part of its function type.
template <class Function>
struct without_noexcept {
    using type = Function;
};
template <class Result, class... Args>
struct without_noexcept<Result(Args...) noexcept> {
    using type = Result(Args...);
};

// `Found` is what lookup finds as the member's name in the plugin type: an override when
// declared below plugd::handler with handler's signature.
template <class Found, class Base>
constexpr bool is_override() {
    return !std::is_same_v<typename member_pointer<Found>::owner, handler> &&
           std::is_same_v<typename without_noexcept<typename member_pointer<Found>::function>::type,
                          typename member_pointer<Base>::function>;
}

template <class T>
constexpr unsigned entry_points() {
    unsigned points = 0;
    // An overloaded or inaccessible name cannot be inspected: then assume an override.
    if constexpr (requires { &T::handle; }) {
        if constexpr (is_override<decltype(&T::handle), decltype(&handler::handle)>())
            points |= answers_requests;
    } else {
        points |= answers_requests;
    }
    if constexpr (requires { &T::serve; }) {
        if constexpr (is_override<decltype(&T::serve), decltype(&handler::serve)>())
            points |= serves_connections;
    } else {
        points |= serves_connections;
    }
    if constexpr (requires { &T::filter; }) {
        if constexpr (is_override<decltype(&T::filter), decltype(&handler::filter)>())
            points |= filters;
    } else {
        points |= filters;
    }
    if constexpr (requires { &T::serve_session; }) {
        if constexpr (is_override<decltype(&T::serve_session), decltype(&handler::serve_session)>())
            points |= serves_sessions;
    } else {
        points |= serves_sessions;
    }
    return points;
}

}  // namespace plugd::detail

/// Exports `type` (a `plugd::handler` constructible from `plugd::context&`) as this
/// library's plugin. Use it exactly once, at namespace scope, in one source file.
///
/// It emits the only symbols of the plugin's own code that are exported: the ABI
/// fingerprint, in the `.plugd_abi` section where the core reads it before loading the
/// file, the factory the core calls, and which entry points `type` overrides (the core
/// checks them against the listeners' framings; a plugin built before PLUGD_PLUGIN emitted
/// it lacks it and is not checked, and an older plugd ignores it: no SDK version change). It also
/// reserves the `.plugd_seal` section (not exported), which plugd_add_plugin() fills after linking
/// so that a file that is half old and half new build is refused instead of loaded. (Boost's
/// headers add a few vague-linkage symbols that Boost marks visible on purpose, such as the
/// type_info of boost::system::system_error and Asio's per-thread call stack: they let exceptions
/// and Asio's coroutine frame cache work across the boundary, and bind to the core's own copies.)
#define PLUGD_PLUGIN(type)                                                                      \
    extern "C" __attribute__((visibility("default"), used, section(".plugd_abi")))              \
    const char plugd_abi_fingerprint[] = PLUGD_ABI_FINGERPRINT;                                 \
    extern "C" __attribute__((visibility("hidden"), used, retain, section(".plugd_seal")))      \
    const char plugd_seal[PLUGD_SEAL_SIZE] = PLUGD_UNSEALED;                                    \
    extern "C" __attribute__((visibility("default"))) ::plugd::handler* plugd_make_handler(     \
        ::plugd::context& ctx) {                                                                \
        return new type(ctx);                                                                   \
    }                                                                                           \
    extern "C" __attribute__((visibility("default"), used)) const unsigned plugd_entry_points = \
        ::plugd::detail::entry_points<type>();
