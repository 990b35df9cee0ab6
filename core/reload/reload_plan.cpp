// reload_plan: the diff between two configurations.
#include "reload/reload_plan.hpp"

#include "plugins/plugin_version.hpp"

namespace plugd {

reload_plan plan_reload(const server_config& running, const server_config& next,
                        const std::function<std::uint64_t(const std::string&)>& loaded_hash) {
    reload_plan plan;
    for (const auto& spec : next.plugins) {
        const plugin_spec* old = running.find_plugin(spec.name);
        if (old && *old == spec && plugin_file_hash(spec) == loaded_hash(spec.name)) {
            plan.keep.push_back(spec.name);
        } else {
            plan.load.push_back(spec);
        }
    }
    for (const auto& spec : running.plugins) {
        if (!next.find_plugin(spec.name)) plan.unload.push_back(spec.name);
    }
    for (const auto& l : next.listeners) {
        const listener_spec* old = nullptr;
        for (const auto& o : running.listeners) {
            if (o.name == l.name) old = &o;
        }
        if (old && old->address == l.address && old->port == l.port) {
            plan.keep_listeners.push_back(l);
        } else {
            if (old) plan.remove.push_back(old->name);
            plan.add.push_back(l);
        }
    }
    for (const auto& o : running.listeners) {
        bool named = false;
        for (const auto& l : next.listeners) named = named || l.name == o.name;
        if (!named) plan.remove.push_back(o.name);
    }
    return plan;
}

std::string join_names(const std::vector<std::string>& names) {
    if (names.empty()) return "none";
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace plugd
