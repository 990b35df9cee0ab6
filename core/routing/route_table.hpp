// route_table: which of a listener's routes an HTTP request goes to.
//
// Precedence, most specific first (docs/operations.md, "Routes"): a route for the request's
// exact host, then one for a wildcard host (the longest suffix first), then one for any
// host; within those, an exact path, then the longest matching prefix; at the same host
// and path, a route that lists the method before one for every method. The first route
// that matches host, path and method wins. When routes match host and path but none the
// method, the answer is 405 with their methods in Allow; when none matches the path, 404.
//
// Matching costs two hash lookups per host group tried, plus one per '/' of the path
// when no exact path matches: independent of how many routes there are, and no
// allocation.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config.hpp"

namespace plugd {

class route_table {
  public:
    struct match {
        enum class kind { found, not_found, method_not_allowed };
        kind what = kind::not_found;
        std::size_t route = 0;          ///< found: index into the routes given
        std::size_t prefix_length = 0;  ///< found: path bytes the route's path took
        const route_table* table = nullptr;
    };

    route_table() = default;
    /// Routes as validated by the config (no duplicates).
    explicit route_table(const std::vector<route_spec>& routes);

    /// `host`: lower case, without port, empty when the request names none; `path`:
    /// normalised (request_path.hpp).
    match find(std::string_view host, std::string_view path, std::string_view method) const;

    /// For a method_not_allowed match: appends the methods of the routes that matched host
    /// and path, as an Allow field's value ("GET, HEAD, POST").
    void append_allowed(std::string_view host, std::string_view path, std::string& out) const;

    /// Whether any route names a host: when none does, the Host field need not be read.
    bool uses_hosts() const noexcept { return uses_hosts_; }

  private:
    // The routes of one host pattern and one path, told apart by method.
    struct path_routes {
        std::vector<std::pair<std::string, std::size_t>> by_method;  // (method, route)
        std::size_t any_method = npos;
    };
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using path_map = std::unordered_map<std::string, path_routes, string_hash, std::equal_to<>>;
    struct host_routes {
        path_map exact, prefix;
    };
    static constexpr std::size_t npos = ~std::size_t{0};

    /// Calls `visit(paths, prefix_length)` for every path_routes matching (host, path),
    /// most specific first, until it returns true.
    template <class Visit>
    void walk(std::string_view host, std::string_view path, Visit&& visit) const;
    template <class Visit>
    static bool walk_paths(const host_routes& h, std::string_view path, Visit& visit);

    std::unordered_map<std::string, host_routes, string_hash, std::equal_to<>> exact_hosts_;
    std::vector<std::pair<std::string, host_routes>>
        wildcard_hosts_;  ///< ".example.com", longest first
    host_routes any_host_;
    bool uses_hosts_ = false;
};

}  // namespace plugd
