// wrong_abi: claims to be built for another Boost, as a plugin built elsewhere would.
// Its constructor would abort the server: the test proves it never runs.
#include <plugd/context.hpp>
#include <plugd/handler.hpp>
#include <plugd/version.hpp>

#include <cstdlib>

namespace {
struct never_constructed final : plugd::handler {
    never_constructed() { std::abort(); }
    plugd::task<void> handle(plugd::request, plugd::reply&) override { co_return; }
};
// Runs at dlopen: if the core loaded this library at all, the test sees the crash.
const int loaded = (std::abort(), 0);
}  // namespace

extern "C" __attribute__((visibility("default"), used, section(".plugd_abi")))
const char plugd_abi_fingerprint[] =
    "sdk=" PLUGD_STRINGIFY(PLUGD_SDK_VERSION_MAJOR) ";compiler=" PLUGD_ABI_COMPILER
    ";boost=107400;stdlib=" PLUGD_ABI_STDLIB ";json=" PLUGD_STRINGIFY(
        NLOHMANN_JSON_VERSION_MAJOR) "." PLUGD_STRINGIFY(NLOHMANN_JSON_VERSION_MINOR)
    ";cxx=" PLUGD_STRINGIFY(__cplusplus);

extern "C" __attribute__((visibility("default"))) plugd::handler* plugd_make_handler(
    plugd::context&) {
    return new never_constructed;
}
