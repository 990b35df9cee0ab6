// Fuzz target: server.json validation. Any input either validates or is refused with a
// config_error whose message names the file; nothing else may escape, nothing may crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text{reinterpret_cast<const char*>(data), size};
    try {
        const auto cfg = plugd::parse_config(text, "/fuzz/server.json", "/fuzz/plugins");
        if (cfg.listeners.empty() || cfg.plugins.empty()) std::abort();
        for (const auto& l : cfg.listeners) {
            if (!cfg.find_plugin(l.plugin))
                std::abort();  // validation let a dangling route through
        }
    } catch (const plugd::config_error& e) {
        if (std::string_view{e.what()}.rfind("/fuzz/server.json", 0) != 0) std::abort();
    }
    return 0;
}
