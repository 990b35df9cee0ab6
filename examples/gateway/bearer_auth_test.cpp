// bearer_auth's tests, through plugd's test harness (<plugd/testing.hpp>): the filter runs
// before the gateway's own plugins, as server.json chains them.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

#include <string>
#include <vector>

using plugd::testing::options;
using plugd::testing::plugin_host;

namespace {

using headers = std::vector<std::pair<std::string, std::string>>;

// A host whose calls go through bearer_auth (accepting `tokens`) to the greeter.
options behind_auth(nlohmann::json tokens = {"alice-token", "bob-token"}) {
    options o;
    o.filters.push_back({.plugin_file = PLUGIN_FILE, .config = {{"tokens", std::move(tokens)}}});
    return o;
}

headers bearer(const std::string& credentials) {
    return {{"Authorization", credentials}};
}

}  // namespace

TEST_CASE("bearer_auth answers 401 without a token, with another scheme, or a wrong token") {
    plugin_host host{GREETER_FILE, behind_auth()};
    auto r = host.call_http("GET", "/ann");
    CHECK(r.status == 401);
    CHECK(r.fields == "WWW-Authenticate: Bearer\r\n");
    CHECK(r.body == "unauthorized: send Authorization: Bearer <token>");

    CHECK(host.call_http("GET", "/ann", {}, bearer("Basic YWxpY2U6c2VjcmV0")).status == 401);
    CHECK(host.call_http("GET", "/ann", {}, bearer("Bearer")).status == 401);
    for (const char* wrong : {"Bearer carol-token", "Bearer alice-toke", "Bearer alice-token2",
                              "Bearer ALICE-TOKEN", "Bearer alice-token bob-token"}) {
        CAPTURE(wrong);
        r = host.call_http("GET", "/ann", {}, bearer(wrong));
        CHECK(r.status == 401);
        CHECK(r.fields == "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        CHECK(r.body == "unauthorized: this bearer token is not accepted");
    }
}

TEST_CASE("bearer_auth lets an accepted token through and attaches its index for what follows") {
    plugin_host host{GREETER_FILE, behind_auth()};
    auto r = host.call_http("GET", "/ann", {}, bearer("Bearer alice-token"));
    CHECK(r.status == 200);
    CHECK(r.fields.empty());
    CHECK(r.body == "Hello, ann! (token #0)");
    // The scheme is compared without case, as RFC 9110 has it; the token exactly.
    CHECK(host.call_http("GET", "/bo", {}, bearer("bearer   bob-token")).body ==
          "Hello, bo! (token #1)");
    CHECK(host.call_http("GET", "/bo", {}, bearer("BEARER bob-token")).body ==
          "Hello, bo! (token #1)");
    // Each request proves itself: the token of the one before is not remembered.
    CHECK(host.call_http("GET", "/ann").status == 401);
}

TEST_CASE("bearer_auth answers a line request with an error instead of passing it on") {
    plugin_host host{GREETER_FILE, behind_auth()};
    CHECK(host.call("ann") == "ERR bearer_auth needs an http listener");
}

TEST_CASE("bearer_auth refuses a config without a usable token list, naming the key") {
    const auto refused = [](nlohmann::json config, const char* why) {
        options o;
        o.filters.push_back({.plugin_file = PLUGIN_FILE, .config = std::move(config)});
        CHECK_THROWS_WITH_AS(
            plugin_host(GREETER_FILE, o),
            doctest::Contains(
                ("refused its config (/plugins/bearer_auth/config): " + std::string{why}).c_str()),
            std::runtime_error);
    };
    refused(nlohmann::json::object(), "tokens: missing");
    refused({{"tokens", nlohmann::json::array()}}, "tokens: expected a non-empty array");
    refused({{"tokens", "alice-token"}}, "tokens: expected a non-empty array");
    refused({{"tokens", {"alice-token", 7}}}, "tokens[1]: expected a non-empty string, got 7");
    refused({{"tokens", {""}}}, "tokens[0]: expected a non-empty string");
    refused({{"tokens", {"two words"}}}, "tokens[0]: holds a space");
}

TEST_CASE("the gateway's chain: bearer_auth, then rate_limit, then kv, as server.json has it") {
    options o = behind_auth();
    o.filters.push_back({.plugin_file = RATE_LIMIT_FILE,
                         .config = {{"per_second", 0.001}, {"burst", 3}},
                         .instance = "limit"});
    plugin_host host{KV_FILE, o};
    // Refused by bearer_auth: never counted by the rate limit after it.
    for (int i = 0; i < 5; ++i) CHECK(host.call_http("POST", "/kv/", "GET k").status == 401);
    const auto alice = bearer("Bearer alice-token");
    CHECK(host.call_http("POST", "/kv/", "SET k v", alice).body == "OK");
    CHECK(host.call_http("POST", "/kv/", "GET k", alice).body == "v");
    CHECK(host.call_http("POST", "/kv/", "INCR n", alice).body == "1");
    // One request every 1000 s at most, 3 at once: the 4th is refused for long enough
    // that no slot boundary can fall between these calls.
    const auto r = host.call_http("POST", "/kv/", "INCR n", alice);
    CHECK(r.status == 429);
    CHECK(r.fields.starts_with("Retry-After: "));
    CHECK(host.shared().get("n") == "1");
}
