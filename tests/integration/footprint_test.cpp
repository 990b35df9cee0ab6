// What a connection costs the server: the figure plugd's memory scales with. A guard, so
// the cost cannot silently grow back (bench/compare.sh idle measures it against other
// servers; this only holds the line).
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <string>
#include <vector>

#include "plugd_process.hpp"
#include "skip_test.hpp"
#include "websocket_frames.hpp"

using namespace plugd::test;

namespace {

// Sanitizers give every allocation redzones and keep freed memory in quarantine: the
// server's resident memory says nothing about plugd's then.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

// Raises this process's descriptor limit toward `wanted`; returns how many it may open.
rlim_t descriptors_for(rlim_t wanted) {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < wanted) {
        limit.rlim_cur = std::min(wanted, limit.rlim_max);
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

// How many idle clients a guard opens: a few thousand, enough that the figure is stable
// (pages, not bytes, are counted), within this process's descriptor limit (raised if it
// may be). 0 when that limit is too low, `why` then saying so.
std::size_t idle_clients(std::string& why) {
    const rlim_t wanted = 3000;
    const rlim_t available = descriptors_for(wanted + 64);
    if (available < 1064) {
        why = "only " + std::to_string(available) +
              " file descriptors; raise ulimit -n (hard limit) to 1064 or more";
        return 0;
    }
    return std::min<rlim_t>(wanted, available - 64);
}

}  // namespace

TEST_CASE("an idle keep-alive connection costs the server at most 1 KiB of resident memory") {
    if (sanitized) return skip_test("a sanitizer build's memory use is not plugd's");
    std::string why;
    const std::size_t count = idle_clients(why);
    if (count == 0) return skip_test(why);
    temp_dir tmp;
    // One thread: connections are accepted in the order they arrived, so when the last one
    // is answered every one before it has been accepted.
    const auto cfg = tmp.write(
        "server.json", R"({ "threads": 1, "plugin_dir": ")" + bundled_plugin_dir().string() + R"(",
        "plugins": { "greeting": { "file": "greeting" } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "greeting" } ] })");
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    REQUIRE(ask(port, "warm") == "Hello, warm");  // the first request's one-time costs
    const std::size_t before = rss_kib(p.pid());
    std::vector<line_client> idle;
    idle.reserve(count);
    for (std::size_t i = 0; i < count; ++i) idle.emplace_back(port);
    line_client last{port};
    last.send("last\n");
    REQUIRE(last.read_line(30s) == "Hello, last");
    const std::size_t after = rss_kib(p.pid());
    const double per_connection = (after > before ? after - before : 0) * 1024.0 / (count + 1);
    MESSAGE(count << " idle connections: " << per_connection << " bytes each");
    // Measured about 580 bytes (830 before the accept operation stopped passing its block
    // to the connection's wait); the margin absorbs allocator noise.
    CHECK(per_connection <= 1024);
    // And they are still served, not merely held.
    idle.front().send("first\n");
    CHECK(idle.front().read_line() == "Hello, first");
}

TEST_CASE("an idle WebSocket session costs the server at most 2.375 KiB of resident memory") {
    if (sanitized) return skip_test("a sanitizer build's memory use is not plugd's");
    std::string why;
    const std::size_t count = idle_clients(why);
    if (count == 0) return skip_test(why);
    temp_dir tmp;
    // Sessions of the test chat, all in one room: each subscribed, waiting in next().
    const auto cfg = tmp.write(
        "server.json", R"({ "threads": 1, "plugin_dir": ")" + test_plugin_dir().string() + R"(",
        "plugins": { "chat": { "file": "ws_chat" } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": "http",
                         "routes": [ { "path": "/room/", "plugin": "chat" } ] } ] })");
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    {
        line_client warm = upgrade(port, "/room/guard");  // the first session's one-time costs
    }
    const std::size_t before = rss_kib(p.pid());
    std::vector<line_client> idle;
    idle.reserve(count);
    // Each upgrade returns once its 101 is read, which goes out once its session waits.
    for (std::size_t i = 0; i < count; ++i) idle.push_back(upgrade(port, "/room/guard"));
    const std::size_t after = rss_kib(p.pid());
    const double per_session = (after > before ? after - before : 0) * 1024.0 / count;
    MESSAGE(count << " idle WebSocket sessions: " << per_session << " bytes each");
    // Measured about 2,150 bytes here (bench/compare.sh fanout's chat: about 1,940; the goal
    // is 2 KiB); 2,515 before the last cuts.
    CHECK(per_session <= 2432);
    // And they are still served: a message reaches one of them.
    idle.back().send(client_frame(0x1, "hello"));
    const auto f = read_frame(idle.front());
    REQUIRE(f);
    CHECK(f->payload == "v1:hello");
}
