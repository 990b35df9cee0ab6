// What an operator sees of a listener's routes: the access log's route and plugin,
// /metrics by route with the requests no route took, and the route table in /status.
#include <doctest/doctest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "line_client.hpp"
#include "metric_samples.hpp"
#include "plugd_process.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

// An http listener "web" with its access log, two routes (one named, one known by its
// index, 1) over the test plugins, and the admin endpoint.
std::string config() {
    return R"({ "plugin_dir": ")" + test_plugin_dir().string() + R"(",
        "plugins": {
            "gate": { "file": "gate" },
            "q": { "file": "route_echo", "config": { "answer": "quote" } },
            "o": { "file": "route_echo", "config": { "answer": "order" } } },
        "listeners": [ { "name": "web", "address": "127.0.0.1", "port": 0, "framing": "http",
            "access_log": true,
            "routes": [
                { "name": "quotes", "path": "/quotes/", "chain": ["gate", "q"] },
                { "path": "/orders/", "methods": ["GET"], "plugin": "o" } ] } ],
        "admin": { "address": "127.0.0.1", "port": 0 } })";
}

std::optional<http_response> send_request(line_client& c, const std::string& method,
                                          const std::string& target,
                                          const std::string& fields = "") {
    c.send(method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
    return read_response(c);
}

// The route, plugin and outcome fields of listener `listener`'s access lines in a text
// log, a line each, in order.
std::string access_lines(const std::string& log, const std::string& listener) {
    static const std::regex field{R"( ([a-z_]+)=(\S*))"};
    std::string lines;
    std::istringstream in{log};
    for (std::string line; std::getline(in, line);) {
        if (line.find(" access listener=" + listener + " ") == std::string::npos) continue;
        std::map<std::string, std::string> fields;
        for (std::sregex_iterator it{line.begin(), line.end(), field}, end; it != end; ++it)
            fields[(*it)[1].str()] = (*it)[2].str();
        // Every access line of a listener with routes has a route field, empty or not.
        CHECK_MESSAGE(fields.contains("route"), line);
        CHECK_MESSAGE(fields.contains("plugin"), line);
        lines += "route=" + fields["route"] + " plugin=" + fields["plugin"] +
                 " outcome=" + fields["outcome"] + "\n";
    }
    return lines;
}

}  // namespace

TEST_CASE(
    "routes are observable: route and plugin in the access log, requests by route and unrouted "
    "ones in /metrics, the route table in /status") {
    temp_dir tmp;
    plugd_process p{{"-c", tmp.write("server.json", config()).string()}};
    const auto port = p.port("web");
    const auto admin = p.admin_port();

    line_client c{port};
    auto r = send_request(c, "GET", "/quotes/AAPL", "X-Token: A\r\n");
    REQUIRE(r);
    CHECK(r->body == "quote route=quotes rest=AAPL message=AAPL token=A");
    r = send_request(c, "GET", "/quotes/MSFT", "X-Token: A\r\n");
    REQUIRE(r);
    CHECK(r->status == 200);
    r = send_request(c, "GET", "/quotes/MSFT");  // the filter answers: still the route's request
    REQUIRE(r);
    CHECK(r->status == 401);
    r = send_request(c, "GET", "/orders/7");
    REQUIRE(r);
    CHECK(r->body == "order route=1 rest=7 message=7 token=");
    r = send_request(c, "GET", "/nowhere");
    REQUIRE(r);
    CHECK(r->status == 404);
    r = send_request(c, "PUT", "/orders/7");  // a route's path, not its method: 405
    REQUIRE(r);
    CHECK(r->status == 405);

    {  // the access log: each request's route and final instance, none for no route
        REQUIRE_MESSAGE(p.wait_for_log(" access listener=web ", 10s, 6), p.log());
        CHECK(access_lines(p.log(), "web") ==
              "route=quotes plugin=q outcome=200\n"
              "route=quotes plugin=q outcome=200\n"
              "route=quotes plugin=q outcome=401\n"
              "route=1 plugin=o outcome=200\n"
              "route= plugin= outcome=404\n"
              "route= plugin= outcome=405\n");
    }
    {  // /metrics
        const auto m = scrape_metrics(admin);
        CHECK(m.at(R"(plugd_requests_total{listener="web",route="quotes",plugin="q"})") == 3);
        CHECK(m.at(R"(plugd_requests_total{listener="web",route="1",plugin="o"})") == 1);
        CHECK(m.at(R"(plugd_unrouted_requests_total{listener="web"})") == 1);
        CHECK(m.at(R"(plugd_method_not_allowed_total{listener="web"})") == 1);
        // A request no route took is in no route's series.
        int series = 0;
        for (const auto& [name, value] : m)
            series += name.starts_with(R"(plugd_requests_total{listener="web",)");
        CHECK(series == 2);
    }
    {  // /status
        const auto s = http_request(admin, "GET", "/status");
        REQUIRE(s);
        REQUIRE(s->status == 200);
        const json j = json::parse(s->body);
        REQUIRE(j["listeners"].size() == 1);
        const json& web = j["listeners"][0];
        CHECK(web["name"] == "web");
        CHECK_FALSE(web.contains("plugin"));  // a listener with routes has a chain per route
        CHECK(web["routes"] == json::parse(R"([
            { "route": "quotes", "path": "/quotes/", "chain": ["gate", "q"] },
            { "route": "1", "path": "/orders/", "methods": ["GET"], "chain": ["o"] } ])"));
    }
}
