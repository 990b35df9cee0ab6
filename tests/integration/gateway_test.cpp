// examples/gateway served by the real plugd: its server.json as shipped, on an ephemeral
// port and with this build's plugins, checked from the outside as a client sees it.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

// The instance of `cfg` made from plugin file `file`.
json& instance_of(json& cfg, const std::string& file) {
    for (auto& [name, spec] : cfg["plugins"].items()) {
        if (spec.value("file", "") == file) return spec;
    }
    throw std::runtime_error("examples/gateway/server.json has no instance of " + file);
}

// examples/gateway/server.json with an ephemeral port and the plugins of this build;
// `limit`, when given, replaces rate_limit's config; `workers`, if not 0, makes it run
// supervised worker processes.
json gateway_config(const std::optional<json>& limit, int workers) {
    std::ifstream in{PLUGD_SOURCE_DIR "/examples/gateway/server.json"};
    json cfg = json::parse(in);
    cfg["plugin_dir"] = test_plugin_dir().string();
    for (auto& l : cfg["listeners"]) l["port"] = 0;
    if (limit) instance_of(cfg, "rate_limit")["config"] = *limit;
    if (workers != 0) cfg["workers"] = workers;
    return cfg;
}

// A plugd serving the gateway example.
struct gateway {
    explicit gateway(const std::optional<json>& limit = std::nullopt, int workers = 0)
        : cfg(gateway_config(limit, workers)),  // not braces: json{x} is an array
          tokens{
              instance_of(cfg, "bearer_auth")["config"]["tokens"].get<std::vector<std::string>>()},
          file{tmp.write("server.json", cfg.dump())},
          process{{"-c", file.string()}},
          port{process.port(cfg["listeners"][0]["name"])} {
        REQUIRE(tokens.size() >= 2);
        // With workers, each says so once it serves: both take connections from here on.
        REQUIRE(process.wait_for_log("serving generation 1", 10s, workers == 0 ? 1 : workers));
    }

    json cfg;
    std::vector<std::string> tokens;  ///< bearer_auth's, as the example ships them
    temp_dir tmp;
    std::filesystem::path file;
    plugd_process process;
    std::uint16_t port;
};

// `method target` on `c` with an Authorization field when `authorization` is not empty.
std::optional<http_response> send_request(line_client& c, const std::string& target,
                                          const std::string& authorization = "",
                                          const std::string& method = "GET",
                                          const std::string& body = "") {
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: gateway\r\n";
    if (!authorization.empty()) head += "Authorization: " + authorization + "\r\n";
    if (!body.empty()) head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    c.send(head + "\r\n" + body);
    return read_response(c);
}

// A connection to 127.0.0.1:`port` from loopback address `source`: rate_limit keeps a
// bucket per client address, so each address is a client it has not seen yet.
line_client connect_from(const std::string& source, std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string{"socket: "} + std::strerror(errno));
    line_client c = line_client::adopt(fd);  // closes it if anything below throws
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1)
        throw std::runtime_error("not an IPv4 address: " + source);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0)
        throw std::runtime_error("bind to " + source + ": " + std::strerror(errno));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
        throw std::runtime_error("connect from " + source + ": " + std::strerror(errno));
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    return c;
}

// Whether a socket can be bound to `address`: Linux routes all of 127.0.0.0/8 to the
// loopback interface, a sandbox's network stack may not.
bool bindable(const std::string& address) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in at{};
    at.sin_family = AF_INET;
    const bool ok = ::inet_pton(AF_INET, address.c_str(), &at.sin_addr) == 1 &&
                    ::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0;
    ::close(fd);
    return ok;
}

constexpr const char* no_second_loopback_address =
    "no socket binds to 127.0.0.10 here, and a burst needs client addresses of its own";

// rate_limit's slot with "per_second": 1, on the clock it reads (steady_clock, the same
// for every process of the machine).
std::int64_t one_second_slot() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
               .count() /
           1'000'000;
}

struct burst {
    std::vector<std::optional<http_response>> replies;
    // Whether rate_limit counted every request in one slot. A burst across a slot boundary
    // may be admitted one request more (the next slot's token comes back at the boundary):
    // that burst shows nothing, and the caller tries again as another client.
    bool in_one_slot = false;
};

// `count` authorized requests for `target`, each on a new connection from `client`;
// `before(i)` runs before request i (0-based) connects.
burst send_burst(
    std::uint16_t port, const std::string& client, const std::string& token, int count,
    const std::string& target, const std::function<void(int)>& before = [](int) {}) {
    burst b;
    const std::int64_t first = one_second_slot();
    for (int i = 0; i < count; ++i) {
        before(i);
        line_client c = connect_from(client, port);
        b.replies.push_back(send_request(c, target, "Bearer " + token));
    }
    b.in_one_slot = one_second_slot() == first;
    return b;
}

// A burst of 11 against {"per_second": 1, "burst": 10}: 10 admitted, the 11th refused
// with 429 and a Retry-After in whole seconds.
void check_eleventh_refused(const burst& b) {
    REQUIRE(b.replies.size() == 11);
    for (std::size_t i = 0; i < 10; ++i) {
        CAPTURE(i);
        REQUIRE(b.replies[i]);
        CHECK(b.replies[i]->status == 200);
        CHECK(b.replies[i]->body == "Hello, burst! (token #0)");
    }
    const auto& refused = b.replies[10];
    REQUIRE(refused);
    CHECK(refused->status == 429);
    CHECK(refused->body.starts_with("too many requests; retry in "));
    REQUIRE(refused->headers.contains("retry-after"));
    const std::string& retry = refused->headers.at("retry-after");
    int seconds = 0;
    const auto [end, ec] = std::from_chars(retry.data(), retry.data() + retry.size(), seconds);
    CHECK_MESSAGE((ec == std::errc{} && end == retry.data() + retry.size()),
                  "Retry-After is not a whole number of seconds: " << retry);
    // At least a second, and no longer than a whole bucket takes to refill.
    CHECK(seconds >= 1);
    CHECK(seconds <= 10);
}

const json one_per_second = {{"per_second", 1}, {"burst", 10}};

}  // namespace

TEST_CASE(
    "gateway example: without a token 401 with WWW-Authenticate Bearer, a wrong token 401, an "
    "accepted one reaches greeter or kv by route") {
    gateway g;  // rate_limit as the example configures it: these few requests pass it
    line_client c{g.port};

    auto r = send_request(c, "/hello/ann");
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->headers["www-authenticate"] == "Bearer");
    CHECK(r->body == "unauthorized: send Authorization: Bearer <token>");

    r = send_request(c, "/hello/ann", "Bearer not-" + g.tokens[0]);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->headers["www-authenticate"].starts_with("Bearer"));
    CHECK(r->body == "unauthorized: this bearer token is not accepted");
    // Another scheme with a right token is no bearer token.
    r = send_request(c, "/hello/ann", "Basic " + g.tokens[0]);
    REQUIRE(r);
    CHECK(r->status == 401);
    // The kv route is behind the same filter.
    r = send_request(c, "/kv/", "", "POST", "GET k");
    REQUIRE(r);
    CHECK(r->status == 401);

    // greeter answers /hello/, with the index of the token bearer_auth accepted.
    r = send_request(c, "/hello/ann", "Bearer " + g.tokens[1]);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "Hello, ann! (token #1)");
    r = send_request(c, "/hello/bob", "bearer " + g.tokens[0]);  // the scheme in any case
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "Hello, bob! (token #0)");

    // kv answers /kv/: what one token's client set, another's reads back.
    r = send_request(c, "/kv/", "Bearer " + g.tokens[0], "POST", "SET k from the gateway");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "OK");
    r = send_request(c, "/kv/", "Bearer " + g.tokens[1], "POST", "GET k");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "from the gateway");

    // No route, no filter: a 404 whatever the token.
    r = send_request(c, "/elsewhere", "Bearer " + g.tokens[0]);
    REQUIRE(r);
    CHECK(r->status == 404);
}

TEST_CASE(
    "gateway example: the 11th request of a burst from one client gets 429 with Retry-After, "
    "another client still gets 200") {
    if (!bindable("127.0.0.10")) return skip_test(no_second_loopback_address);
    gateway g{one_per_second};
    bool shown = false;
    for (int attempt = 0; attempt < 5 && !shown; ++attempt) {
        const std::string client = "127.0.0." + std::to_string(10 + attempt);
        const burst b = send_burst(g.port, client, g.tokens[0], 11, "/hello/burst");
        if (!b.in_one_slot) {
            MESSAGE("the burst from " << client << " crossed a second: again from another address");
            continue;
        }
        check_eleventh_refused(b);
        shown = true;
        // The bucket is the client's: 127.0.0.1 has all of its own.
        line_client other{g.port};
        const auto r = send_request(other, "/hello/other", "Bearer " + g.tokens[1]);
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "Hello, other! (token #1)");
    }
    CHECK(shown);
}

TEST_CASE(
    "gateway example with 2 workers: the 11th request of a burst split over both workers gets "
    "429") {
    if (!bindable("127.0.0.20")) return skip_test(no_second_loopback_address);
    gateway g{one_per_second, 2};
    const std::vector<pid_t> workers = children_of(g.process.pid());
    REQUIRE(workers.size() == 2);
    bool shown = false;
    for (int attempt = 0; attempt < 5 && !shown; ++attempt) {
        const std::string client = "127.0.0." + std::to_string(20 + attempt);
        // One accept queue for both workers: while one is stopped, the other takes every
        // connection. The first 5 requests go to the second worker, the other 6 to the first,
        // so neither saw more than 6 of them: only a bucket both share refuses the 11th.
        std::optional<paused_workers> paused;
        const burst b = send_burst(g.port, client, g.tokens[0], 11, "/hello/burst", [&](int i) {
            if (i == 0 || i == 5) {
                paused.reset();
                paused.emplace();
                REQUIRE(paused->pause(workers[i == 0 ? 0 : 1]));
            }
        });
        paused.reset();
        if (!b.in_one_slot) {
            MESSAGE("the burst from " << client << " crossed a second: again from another address");
            continue;
        }
        check_eleventh_refused(b);
        shown = true;
    }
    CHECK(shown);
}
