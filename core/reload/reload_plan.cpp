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

void check_canary_plan(const server_config& running, const server_config& next,
                       const reload_plan& plan) {
    const auto refuse = [&](const std::string& path, const std::string& what) {
        throw config_error(next.source.string() + ": " + path + ": " + what);
    };
    const std::string instead =
        ": a canary reload changes plugin instances only (both of its sides share everything "
        "else, so that they are compared on the same traffic); make this change in a reload "
        "without --canary, before or after the canary";
    for (const auto& spec : plan.load) {
        if (!running.find_plugin(spec.name))
            refuse("/plugins/" + spec.name,
                   "a new instance: a canary compares a new version of an instance with the "
                   "one serving, and this one has none; add it in a reload without --canary");
    }
    for (const auto& name : plan.unload) refuse("/plugins/" + name, "no longer named" + instead);
    if (running.listeners.size() != next.listeners.size())
        refuse("/listeners", "listeners added or removed" + instead);
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
        if (running.listeners[i] != next.listeners[i])
            refuse("/listeners/" + std::to_string(i), "changed" + instead);
    }
    if (running.limits != next.limits) refuse("/limits", "changed" + instead);
    if (running.log != next.log) refuse("/log", "changed" + instead);
    if (running.rollback_after_crashes != next.rollback_after_crashes ||
        running.rollback_window != next.rollback_window)
        refuse("/rollback_after_crashes", "or /rollback_window_ms changed" + instead);
    if (plan.load.empty())
        refuse("/plugins",
               "no plugin instance changed (its file, bytes, config or settings): a canary "
               "would compare the versions serving with themselves; change an instance, or "
               "reload without --canary");
}

std::string join_names(const std::vector<std::string>& names) {
    if (names.empty()) return "none";
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace plugd
