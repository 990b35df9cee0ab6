// route_table: built once per reload, read by every request of a routed listener.
#include "routing/route_table.hpp"

#include <algorithm>

namespace plugd {

route_table::route_table(const std::vector<route_spec>& routes) {
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const route_spec& r = routes[i];
        host_routes* hosts = &any_host_;
        if (r.host.starts_with("*.")) {
            const std::string suffix = r.host.substr(1);  // ".example.com"
            auto it = std::find_if(wildcard_hosts_.begin(), wildcard_hosts_.end(),
                                   [&](const auto& w) { return w.first == suffix; });
            if (it == wildcard_hosts_.end()) {
                wildcard_hosts_.emplace_back(suffix, host_routes{});
                it = std::prev(wildcard_hosts_.end());
            }
            hosts = &it->second;
        } else if (!r.host.empty()) {
            hosts = &exact_hosts_[r.host];
        }
        uses_hosts_ = uses_hosts_ || !r.host.empty();
        path_map& paths = r.path.ends_with('/') ? hosts->prefix : hosts->exact;
        path_routes& at = paths[r.path];
        if (r.methods.empty()) {
            at.any_method = i;
            continue;
        }
        for (const auto& m : r.methods) at.by_method.emplace_back(m, i);
    }
    // A GET route takes HEAD where no route of the same host and path lists HEAD.
    const auto add_head = [](path_map& paths) {
        for (auto& [path, at] : paths) {
            const auto listed = [&](std::string_view m) {
                return std::any_of(at.by_method.begin(), at.by_method.end(),
                                   [&](const auto& e) { return e.first == m; });
            };
            if (listed("HEAD")) continue;
            for (std::size_t k = 0, n = at.by_method.size(); k < n; ++k)
                if (at.by_method[k].first == "GET")
                    at.by_method.emplace_back("HEAD", at.by_method[k].second);
        }
    };
    const auto both = [&](host_routes& h) {
        add_head(h.exact);
        add_head(h.prefix);
    };
    for (auto& [host, h] : exact_hosts_) both(h);
    for (auto& [suffix, h] : wildcard_hosts_) both(h);
    both(any_host_);
    std::stable_sort(wildcard_hosts_.begin(), wildcard_hosts_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

template <class Visit>
bool route_table::walk_paths(const host_routes& h, std::string_view path, Visit& visit) {
    if (auto it = h.exact.find(path); it != h.exact.end() && visit(it->second, path.size()))
        return true;
    if (h.prefix.empty()) return false;
    // Prefixes end with '/': try the path up to each of its slashes, longest first.
    for (std::size_t end = path.size(); end > 0;) {
        const std::size_t slash = path.rfind('/', end - 1);
        if (slash == std::string_view::npos) break;
        const std::string_view prefix = path.substr(0, slash + 1);
        if (auto it = h.prefix.find(prefix); it != h.prefix.end() && visit(it->second, slash + 1))
            return true;
        end = slash;
    }
    return false;
}

template <class Visit>
void route_table::walk(std::string_view host, std::string_view path, Visit&& visit) const {
    if (!host.empty() && uses_hosts_) {
        if (auto it = exact_hosts_.find(host); it != exact_hosts_.end())
            if (walk_paths(it->second, path, visit)) return;
        for (const auto& [suffix, h] : wildcard_hosts_) {
            // "*.example.com" takes "a.example.com" and "a.b.example.com", not "example.com".
            if (host.size() > suffix.size() && host.ends_with(suffix))
                if (walk_paths(h, path, visit)) return;
        }
    }
    walk_paths(any_host_, path, visit);
}

route_table::match route_table::find(std::string_view host, std::string_view path,
                                     std::string_view method) const {
    match m;
    m.table = this;
    walk(host, path, [&](const path_routes& at, std::size_t prefix_length) {
        for (const auto& [listed, route] : at.by_method) {
            if (listed != method) continue;
            m = {match::kind::found, route, prefix_length, this};
            return true;
        }
        if (at.any_method != npos) {
            m = {match::kind::found, at.any_method, prefix_length, this};
            return true;
        }
        m.what = match::kind::method_not_allowed;  // unless a less specific one takes it
        return false;
    });
    return m;
}

void route_table::append_allowed(std::string_view host, std::string_view path,
                                 std::string& out) const {
    std::vector<std::string_view> methods;
    walk(host, path, [&](const path_routes& at, std::size_t) {
        for (const auto& [listed, route] : at.by_method)
            if (std::find(methods.begin(), methods.end(), listed) == methods.end())
                methods.push_back(listed);
        return false;
    });
    std::sort(methods.begin(), methods.end());
    for (std::size_t i = 0; i < methods.size(); ++i) (out += i ? ", " : "") += methods[i];
}

}  // namespace plugd
