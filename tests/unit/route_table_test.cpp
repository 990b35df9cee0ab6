// Routes: which request goes to which chain (route_table), the path it is matched on
// (request_path), and the route tables server.json refuses.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config.hpp"
#include "routing/request_path.hpp"
#include "routing/route_table.hpp"

namespace {

using plugd::route_spec;
using plugd::route_table;
using kind = route_table::match::kind;

route_spec route(std::string host, std::string path, std::vector<std::string> methods = {}) {
    route_spec r;
    r.host = std::move(host);
    r.path = std::move(path);
    r.methods = std::move(methods);
    r.chain = {"p"};
    return r;
}

// The index of the route `table` picks, or -404 / -405.
int pick(const route_table& table, std::string_view host, std::string_view path,
         std::string_view method = "GET") {
    const auto m = table.find(host, path, method);
    if (m.what == kind::not_found) return -404;
    if (m.what == kind::method_not_allowed) return -405;
    return static_cast<int>(m.route);
}

std::string normalized(std::string_view target) {
    std::string out;
    const auto n = plugd::normalize_target(target, out);
    if (n == std::string_view::npos) return "<refused>";
    return out.substr(0, n);
}

}  // namespace

TEST_CASE("routes: an exact path beats a prefix, and the longest prefix wins") {
    const route_table t{
        {route("", "/"), route("", "/api/"), route("", "/api/quotes/"), route("", "/api/quotes")}};
    CHECK(pick(t, "", "/api/quotes") == 3);       // exact
    CHECK(pick(t, "", "/api/quotes/AAPL") == 2);  // longest prefix
    CHECK(pick(t, "", "/api/quotes/") == 2);      // a prefix matches itself
    CHECK(pick(t, "", "/api/orders/1") == 1);
    CHECK(pick(t, "", "/api") == 0);  // "/api/" does not take "/api"
    CHECK(pick(t, "", "/static/x.css") == 0);
    const auto m = t.find("", "/api/quotes/AAPL", "GET");
    CHECK(m.prefix_length == std::string("/api/quotes/").size());
}

TEST_CASE("routes: an exact host beats a wildcard host, which beats no host") {
    const route_table t{{route("", "/"), route("*.example.com", "/"), route("api.example.com", "/"),
                         route("*.eu.example.com", "/")}};
    CHECK(pick(t, "api.example.com", "/x") == 2);
    CHECK(pick(t, "www.example.com", "/x") == 1);
    CHECK(pick(t, "a.eu.example.com", "/x") == 3);  // the longer wildcard
    CHECK(pick(t, "example.com", "/x") == 0);       // "*." needs a label before it
    CHECK(pick(t, "other.org", "/x") == 0);
    CHECK(pick(t, "", "/x") == 0);
    // A host's routes that do not match the path give way to less specific hosts' ones.
    const route_table u{{route("api.example.com", "/v2/"), route("", "/")}};
    CHECK(pick(u, "api.example.com", "/v1/x") == 1);
    CHECK(pick(u, "api.example.com", "/v2/x") == 0);
}

TEST_CASE("routes: a route listing the method beats one for every method, else 405") {
    const route_table t{{route("", "/items/", {"POST"}), route("", "/items/"),
                         route("", "/orders/", {"GET", "DELETE"}),
                         route("", "/orders/x", {"PUT"})}};
    CHECK(pick(t, "", "/items/1", "POST") == 0);
    CHECK(pick(t, "", "/items/1", "GET") == 1);
    CHECK(pick(t, "", "/orders/1", "GET") == 2);
    CHECK(pick(t, "", "/orders/1", "HEAD") == 2);  // GET routes take HEAD
    CHECK(pick(t, "", "/orders/1", "POST") == -405);
    CHECK(pick(t, "", "/orders/x", "GET") == 2);  // the exact PUT route gives way
    CHECK(pick(t, "", "/nothing", "GET") == -404);
    std::string allow;
    t.append_allowed("", "/orders/x", allow);
    CHECK(allow == "DELETE, GET, HEAD, PUT");
}

TEST_CASE("routes: the path is matched percent-decoded, without dot segments or repeated slashes") {
    CHECK(normalized("/api/quotes/AAPL?x=1") == "/api/quotes/AAPL");
    CHECK(normalized("/%61dmin/") == "/admin/");
    CHECK(normalized("/x/../admin/panel") == "/admin/panel");
    CHECK(normalized("//admin//panel") == "/admin/panel");
    CHECK(normalized("/a/./b/.") == "/a/b/");
    CHECK(normalized("/a/%2e%2e/b") == "/b");
    CHECK(normalized("/") == "/");
    CHECK(normalized("http://example.com/a/b?q") == "/a/b");
    CHECK(normalized("http://example.com") == "/");
    CHECK(normalized("/..") == "<refused>");
    CHECK(normalized("/a/../../b") == "<refused>");
    CHECK(normalized("/a%zz") == "<refused>");
    CHECK(normalized("/a%00b") == "<refused>");
    CHECK(normalized("/a%4") == "<refused>");
    CHECK(normalized("*") == "<refused>");
    std::string out;
    const auto n = plugd::normalize_target("/greet/w%20orld?name=a%20b", out);
    CHECK(out.substr(0, n) == "/greet/w orld");
    CHECK(out.substr(n) == "?name=a b");
}

TEST_CASE("routes: the host is matched lower case, without its port") {
    std::string buffer;
    CHECK(plugd::request_host("/x", "API.Example.com:8080", buffer) == "api.example.com");
    CHECK(plugd::request_host("/x", "example.com.", buffer) == "example.com");
    CHECK(plugd::request_host("/x", "[::1]:80", buffer) == "[::1]");
    CHECK(plugd::request_host("http://a.example.com:81/x", "b.example.com", buffer) ==
          "a.example.com");
    CHECK(plugd::request_host("/x", "", buffer).empty());
}

namespace {

std::string refusal(const std::string& listener_body) {
    const std::string text =
        R"({ "plugins": { "greeting": { "file": "greeting" }, "auth": { "file": "auth" } },
             "listeners": [ { "name": "web", "port": 0, "framing": "http", )" +
        listener_body + " } ] }";
    try {
        plugd::parse_config(text, "/etc/plugd/server.json", "/opt/plugd/lib/plugd");
    } catch (const plugd::config_error& e) {
        return e.what();
    }
    FAIL("expected a config_error for: " << text);
    return {};
}

}  // namespace

TEST_CASE("-t refuses duplicate and unreachable routes, naming both JSON paths") {
    CHECK(refusal(R"("routes": [ { "path": "/a/", "plugin": "greeting" },
                                 { "path": "/b", "plugin": "greeting" },
                                 { "path": "/a/", "plugin": "auth" } ])") ==
          "/etc/plugd/server.json: /listeners/0/routes/2: matches the same requests as "
          "/listeners/0/routes/0 (host \"\", path \"/a/\", every method), so one of them is "
          "unreachable; remove one, or tell them apart by host, path or methods");
    CHECK(refusal(R"("routes": [ { "path": "/a", "methods": ["GET", "POST"], "plugin": "greeting" },
                                 { "path": "/a", "methods": ["PUT", "POST"], "plugin": "auth" } ])")
              .find("/listeners/0/routes/1: matches the same requests as /listeners/0/routes/0 "
                    "(host \"\", path \"/a\", POST)") != std::string::npos);
    // Told apart by host or method: both reachable.
    CHECK_NOTHROW(plugd::parse_config(
        R"({ "plugins": { "g": { "file": "g" } }, "listeners": [ { "name": "web", "port": 0,
             "framing": "http", "routes": [ { "path": "/a", "plugin": "g" },
             { "path": "/a", "host": "x.org", "plugin": "g" },
             { "path": "/a", "methods": ["POST"], "plugin": "g" } ] } ] })",
        "s.json", "/opt"));
    CHECK(refusal(R"("routes": [ { "path": "/a/../b", "plugin": "greeting" } ])")
              .find("/listeners/0/routes/0/path: \"/a/../b\" holds a \".\" or \"..\" segment") !=
          std::string::npos);
    CHECK(refusal(R"("routes": [ { "path": "/a?x=1", "plugin": "greeting" } ])")
              .find("could never match") != std::string::npos);
    CHECK(refusal(R"("routes": [ { "path": "/a//b", "plugin": "greeting" } ])")
              .find("could never match") != std::string::npos);
    CHECK(refusal(R"("routes": [ { "path": "api", "plugin": "greeting" } ])")
              .find("does not start with '/'") != std::string::npos);
    CHECK(refusal(R"("routes": [ { "name": "x", "path": "/a", "plugin": "greeting" },
                                 { "name": "x", "path": "/b", "plugin": "greeting" } ])") ==
          "/etc/plugd/server.json: /listeners/0/routes/1/name: duplicate route name \"x\", also "
          "used by /listeners/0/routes/0");
}

TEST_CASE("-t refuses routes and chains where they cannot work, saying what to do") {
    CHECK(refusal(R"("plugin": "greeting", "routes": [ { "path": "/", "plugin": "greeting" } ])")
              .find("/listeners/0/plugin: a listener with \"routes\" names its plugins in each "
                    "route") != std::string::npos);
    CHECK(refusal(R"("chain": ["auth", "nope"])")
              .find("/listeners/0/chain/1: no plugin instance named \"nope\"") !=
          std::string::npos);
    CHECK(refusal(R"("chain": ["auth", "auth"])").find("is already in this chain") !=
          std::string::npos);
    CHECK(refusal(R"("chain": [])").find("/listeners/0/chain: expected a non-empty array") !=
          std::string::npos);
    CHECK(refusal(R"("routes": [ { "path": "/", "host": "a.org:80", "plugin": "greeting" } ])")
              .find("without a port") != std::string::npos);
    CHECK(refusal(R"("routes": [ { "path": "/", "methods": ["get"], "plugin": "greeting" } ])")
              .find("write it in upper case") != std::string::npos);
    const std::string line_routes =
        R"({ "plugins": { "g": { "file": "g" } }, "listeners": [ { "name": "l", "port": 0,
             "routes": [ { "path": "/", "plugin": "g" } ] } ] })";
    try {
        plugd::parse_config(line_routes, "s.json", "/opt");
        FAIL("routes on a line listener were accepted");
    } catch (const plugd::config_error& e) {
        CHECK(std::string{e.what()}.find("/listeners/0/routes: routes match HTTP requests") !=
              std::string::npos);
    }
}

TEST_CASE("a route without a name is labelled by its index, and hosts are kept lower case") {
    const auto cfg = plugd::parse_config(
        R"({ "plugins": { "g": { "file": "g" }, "a": { "file": "a", "max_in_flight": 10 } },
             "listeners": [ { "name": "web", "port": 0, "framing": "http", "routes": [
               { "path": "/x", "host": "API.example.com", "chain": ["a", "g"] },
               { "name": "rest", "path": "/", "methods": ["GET"], "plugin": "g" } ] } ] })",
        "s.json", "/opt");
    const auto& l = cfg.listeners.at(0);
    REQUIRE(l.routes.size() == 2);
    CHECK(l.plugin.empty());
    CHECK(l.routes[0].label == "0");
    CHECK(l.routes[0].host == "api.example.com");
    CHECK(l.routes[0].chain == std::vector<std::string>{"a", "g"});
    CHECK(l.routes[1].label == "rest");
    CHECK(cfg.find_plugin("a")->max_in_flight == 10);
    CHECK(cfg.find_plugin("g")->max_in_flight == 0);
}
