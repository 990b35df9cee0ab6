// Topics across processes through a real redis-server (started here on a free loopback
// port): the line chat of tests/plugins/line_chat.cpp with its clients spread over two
// workers, and over two plugd instances; Redis killed and started again; a wrong password.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "metric_samples.hpp"
#include "plugd_process.hpp"
#include "redis_server.hpp"
#include "skip_test.hpp"

using namespace plugd::test;
using json = nlohmann::json;

namespace {

// Polls `condition` every 20 ms until it holds; false after `timeout`.
template <class Condition>
bool eventually(Condition condition, milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// plugd serving line_chat on the raw listener "main" with 2 threads, `workers` processes and
// an admin endpoint; `redis`: the topics.redis object ("" for none). Ready once every
// worker serves and, with Redis, every worker's bridge is up.
struct chat_server {
    chat_server(const std::string& redis, int workers = 1) {
        const std::string topics = redis.empty() ? "{}" : R"({ "redis": )" + redis + " }";
        cfg = tmp.write("server.json", R"({ "threads": 2, "workers": )" + std::to_string(workers) +
                                           R"(, "plugin_dir": ")" + test_plugin_dir().string() +
                                           R"(", "plugins": { "p": { "file": "line_chat.so" } },
            "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0,
                             "framing": "raw", "plugin": "p" } ],
            "topics": )" + topics + R"(,
            "admin": { "address": "127.0.0.1", "port": 0 } })");
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        port = process->port("main");
        admin = process->admin_port();
        REQUIRE_MESSAGE(process->wait_for_log("serving generation 1", 30s, workers),
                        process->log());
        if (!redis.empty())
            REQUIRE_MESSAGE(process->wait_for_log("topics: bridge to Redis at ", 10s, workers),
                            process->log());
    }

    metric_samples metrics() const { return scrape_metrics(admin); }

    // The worker processes' pids, once both have published that they serve.
    std::vector<int> worker_pids() const {
        std::vector<int> pids;
        REQUIRE(eventually([&] {
            const auto r = http_request(admin, "GET", "/status");
            if (!r || r->status != 200) return false;
            pids.clear();
            const json status = json::parse(r->body);
            for (const auto& w : status["workers"]) {
                if (w["up"] != true) return false;
                pids.push_back(w["pid"].get<int>());
            }
            return !pids.empty();
        }));
        return pids;
    }

    temp_dir tmp;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0, admin = 0;
};

std::string redis_at(const redis_server& r, const std::string& more = "") {
    return R"({ "host": "127.0.0.1", "port": )" + std::to_string(r.port()) + more + " }";
}

// A chat client: its room and which process (worker or instance) serves it.
struct member {
    line_client client;
    std::string room;
    int side;
};

member join(std::uint16_t port, const std::string& room, int side) {
    line_client c{port};
    c.send(room + "\n");
    REQUIRE(c.read_line() == "joined " + room);
    return {std::move(c), room, side};
}

// Every member sends `lines` lines tagged `round`; each member must then read every line of
// the others in its room exactly once, and nothing of the other room. Then a fence from
// one member of each room on each side: every member reads the fences of its room next,
// and nothing else. A duplicate (an echo Redis sent back, say) was sent through Redis
// before the fences and would be read before them.
void chat_round(std::vector<member>& members, int lines, const std::string& round) {
    std::map<std::string, int> room_size;
    for (const auto& m : members) ++room_size[m.room];
    for (int k = 0; k < lines; ++k) {
        for (std::size_t i = 0; i < members.size(); ++i)
            members[i].client.send(members[i].room + " " + std::to_string(i) + " " +
                                   std::to_string(k) + " " + round + "\n");
    }
    for (std::size_t i = 0; i < members.size(); ++i) {
        CAPTURE(i);
        std::set<std::pair<int, int>> seen;
        const int expected = (room_size[members[i].room] - 1) * lines;
        for (int n = 0; n < expected; ++n) {
            const auto line = members[i].client.read_line(10s);
            REQUIRE_MESSAGE(line, "member " << i << " (side " << members[i].side << ") got " << n
                                            << " of " << expected << " lines of " << round);
            char room[16], tag[16];
            int sender = -1, k = -1;
            REQUIRE(std::sscanf(line->c_str(), "v1:%15s %d %d %15s", room, &sender, &k, tag) == 4);
            CHECK(room == members[i].room);  // nothing from the other room
            CHECK(tag == round);
            CHECK(sender != static_cast<int>(i));
            CHECK_MESSAGE(seen.insert({sender, k}).second, "twice: " << *line);
        }
    }
    // The fences.
    std::map<std::pair<std::string, int>, std::size_t> fence_of;  // (room, side) -> member
    for (std::size_t i = 0; i < members.size(); ++i)
        fence_of.emplace(std::pair{members[i].room, members[i].side}, i);
    for (const auto& [where, i] : fence_of)
        members[i].client.send("fence " + std::to_string(i) + "\n");
    for (std::size_t i = 0; i < members.size(); ++i) {
        CAPTURE(i);
        std::set<std::string> expected;
        for (const auto& [where, f] : fence_of) {
            if (where.first == members[i].room && f != i)
                expected.insert("v1:fence " + std::to_string(f));
        }
        while (!expected.empty()) {
            const auto line = members[i].client.read_line(10s);
            REQUIRE_MESSAGE(line, "member " << i << " still waits for " << *expected.begin());
            CHECK_MESSAGE(expected.erase(*line) == 1, "not a fence: " << *line);
        }
    }
}

}  // namespace

TEST_CASE(
    "topics with redis: clients on two workers in two rooms each get every line of their "
    "room once") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir dir;
    redis_server redis{binary, dir.path()};
    chat_server s{redis_at(redis), 2};
    CHECK(s.process->count_log("topics are per worker process") == 0);
    const auto pids = s.worker_pids();
    REQUIRE(pids.size() == 2);

    // Half the clients on each worker: the other one is paused while they connect, so the
    // kernel can only hand them to this one.
    constexpr int per_worker = 12;
    std::vector<member> members;
    for (int side = 0; side < 2; ++side) {
        paused_workers paused;
        REQUIRE(paused.pause(pids[1 - side]));
        for (int i = 0; i < per_worker; ++i)
            members.push_back(join(s.port, i % 2 == 0 ? "east" : "west", side));
    }
    // Each worker serves its half (its gauges are published every 200 ms).
    CHECK(eventually([&] {
        const auto r = http_request(s.admin, "GET", "/status");
        if (!r || r->status != 200) return false;
        const auto workers = json::parse(r->body)["workers"];
        return workers.size() == 2 && workers[0]["open_connections"] == per_worker &&
               workers[1]["open_connections"] == per_worker;
    }));
    chat_round(members, 3, "first");
    chat_round(members, 2, "second");

    // Each line (and fence: one per room and worker in each round) went out to Redis once
    // from its worker, and came in once to the other worker; its echo was dropped silently.
    const double sent = 2 * per_worker * (3 + 2) + 2 * 4;
    CHECK(eventually([&] {
        const auto m = s.metrics();
        return m.at(R"(plugd_topic_redis_messages_total{direction="out"})") == sent &&
               m.at(R"(plugd_topic_redis_messages_total{direction="in"})") == sent;
    }));
    const auto m = s.metrics();
    MESSAGE("out " << m.at(R"(plugd_topic_redis_messages_total{direction="out"})") << ", in "
                   << m.at(R"(plugd_topic_redis_messages_total{direction="in"})") << ", expected "
                   << sent);
    CHECK(m.at("plugd_topic_redis_up") == 1);
    CHECK(m.at(R"(plugd_topic_redis_dropped_total{reason="malformed"})") == 0);
    CHECK(m.at(R"(plugd_topic_redis_dropped_total{reason="pending_full"})") == 0);
}

TEST_CASE("topics with redis: two plugd instances sharing one Redis chat as one") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir dir;
    redis_server redis{binary, dir.path()};
    chat_server a{redis_at(redis)}, b{redis_at(redis)};
    std::vector<member> members;
    for (int i = 0; i < 20; ++i) {
        const int side = (i / 2) % 2;
        members.push_back(join(side == 0 ? a.port : b.port, i % 2 == 0 ? "east" : "west", side));
    }
    chat_round(members, 3, "first");

    // A message published to Redis by something else on our channels, not tagged by a plugd,
    // reaches nobody and is counted.
    REQUIRE(redis.command("PUBLISH plugd:chat/east hello") == ":2");
    CHECK(eventually([&] {
        return a.metrics().at(R"(plugd_topic_redis_dropped_total{reason="malformed"})") == 1 &&
               b.metrics().at(R"(plugd_topic_redis_dropped_total{reason="malformed"})") == 1;
    }));
    chat_round(members, 1, "second");  // and the fences show nobody got it
}

TEST_CASE("topics with redis: delivery resumes after Redis is killed and started again") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir dir;
    redis_server redis{binary, dir.path()};
    chat_server a{redis_at(redis)}, b{redis_at(redis)};
    std::vector<member> members;
    for (int i = 0; i < 8; ++i)
        members.push_back(join(i % 2 == 0 ? a.port : b.port, "lobby", i % 2));
    chat_round(members, 2, "before");

    const auto out = [&] {
        return a.metrics().at(R"(plugd_topic_redis_messages_total{direction="out"})");
    };
    const double out_before = out();
    redis.kill();
    for (auto* s : {&a, &b}) {
        REQUIRE_MESSAGE(s->process->wait_for_log("topics: bridge to Redis at 127.0.0.1:" +
                                                 std::to_string(redis.port()) + " is down: "),
                        s->process->log());
        CHECK(eventually([&] { return s->metrics().at("plugd_topic_redis_up") == 0; }));
    }
    // Meanwhile a process's own subscribers still get its messages, at once.
    members[0].client.send("local 0 0 down\n");
    for (std::size_t i = 2; i < members.size(); i += 2)
        CHECK(members[i].client.read_line(5s) == "v1:local 0 0 down");

    redis.restart();
    for (auto* s : {&a, &b}) {
        REQUIRE_MESSAGE(s->process->wait_for_log(" is up again: channels plugd:*", 15s),
                        s->process->log());
        CHECK(s->process->count_log(" is down: ") == 1);  // one line each way
        const auto m = s->metrics();
        CHECK(m.at("plugd_topic_redis_up") == 1);
        CHECK(m.at("plugd_topic_redis_reconnects_total") >= 2);
    }
    // The line published while Redis was down went to Redis once it was back, maybe before
    // the other instance subscribed again (at most once): whoever got it, got it once.
    REQUIRE(eventually([&] { return out() == out_before + 1; }));
    for (std::size_t i = 1; i < members.size(); i += 2) {
        while (const auto early = members[i].client.read_line(300ms))
            CHECK(*early == "v1:local 0 0 down");
    }
    chat_round(members, 2, "after");
}

TEST_CASE("topics with redis: a wrong password is refused, and the log names the password file") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir dir;
    redis_server redis{binary, dir.path(), {"--requirepass", "right-password"}};
    temp_dir files;
    const auto wrong = files.write("redis.password", "wrong-password\n");
    const auto right = files.write("right.password", "right-password\n");
    ::chmod(wrong.c_str(), 0600);
    ::chmod(right.c_str(), 0600);
    {
        chat_server s{redis_at(redis, R"(, "password_file": ")" + wrong.string() + "\"")};
        CHECK_MESSAGE(
            s.process->wait_for_log("is down: Redis refused the password in " + wrong.string()),
            s.process->log());
        CHECK(s.metrics().at("plugd_topic_redis_up") == 0);
    }
    {
        chat_server s{redis_at(redis)};  // no password at all
        CHECK_MESSAGE(s.process->wait_for_log("Redis asks for a password"), s.process->log());
    }
    chat_server s{redis_at(redis, R"(, "password_file": ")" + right.string() + "\"")};
    CHECK(s.process->wait_for_log("is up: channels plugd:*"));
    std::vector<member> members;
    for (int i = 0; i < 3; ++i) members.push_back(join(s.port, "lobby", 0));
    chat_round(members, 1, "authed");
}

TEST_CASE("topics with workers and no redis: a warning says topics are per worker process") {
    chat_server s{"", 2};
    CHECK(s.process->wait_for_log("topics are per worker process"));
    CHECK(s.process->count_log("topics are per worker process") == 1);
}
