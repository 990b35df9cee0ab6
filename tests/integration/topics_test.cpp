// Topics through the real plugd: the line chat of tests/plugins/line_chat.cpp on a raw
// listener served by two threads. Delivery among many clients in rooms, a subscriber that
// never reads (the listener's slow_subscriber policy, memory bounded, the others unharmed),
// a reload during the chat, and what /metrics counts.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;  // resident memory is the sanitizer's, not plugd's
#else
constexpr bool sanitized = false;
#endif

// plugd serving a copy of line_chat (p.so, replaced by tests as a deployment would) on
// the raw listener "main", with 2 threads and an admin endpoint.
struct chat_server {
    explicit chat_server(const std::string& limits = "{}", int workers = 1)
        : plugins{tmp.path() / "plugins"} {
        std::filesystem::create_directory(plugins);
        install_plugin(test_plugin_dir() / "line_chat.so", plugins, "p.so");
        cfg = tmp.write("server.json", R"({ "threads": 2, "workers": )" + std::to_string(workers) +
                                           R"(, "plugin_dir": ")" + plugins.string() +
                                           R"(", "plugins": { "p": { "file": "p.so" } },
            "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0,
                             "framing": "raw", "plugin": "p" } ],
            "limits": )" + limits + R"(,
            "admin": { "address": "127.0.0.1", "port": 0 } })");
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        port = process->port("main");
        admin = process->admin_port();
        REQUIRE(process->wait_for_log("serving generation 1", 30s, workers));
    }

    void reload_to(const std::string& build, int generation) {
        install_plugin(test_plugin_dir() / (build + ".so"), plugins, "p.so");
        process->signal(SIGHUP);
        REQUIRE_MESSAGE(
            process->wait_for_log("reload: generation " + std::to_string(generation) + " "),
            process->log());
    }

    // One sample of /metrics, by its name with labels ("name{a=\"b\"}"); -1 when absent.
    double metric(const std::string& sample) {
        const auto r = http_request(admin, "GET", "/metrics");
        REQUIRE(r);
        const auto at = r->body.find("\n" + sample + " ");
        if (at == std::string::npos) return -1;
        return std::stod(r->body.substr(at + sample.size() + 2));
    }

    temp_dir tmp;
    std::filesystem::path plugins;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0;
    std::uint16_t admin = 0;
};

// A client in `room`, once the chat says it joined.
line_client join(std::uint16_t port, const std::string& room) {
    line_client c{port};
    c.send(room + "\n");
    REQUIRE(c.read_line() == "joined " + room);
    return c;
}

// The same with a tiny receive buffer, so that a client that never reads fills up soon.
line_client join_small(std::uint16_t port, const std::string& room) {
    line_client c{port, 4096};
    c.send(room + "\n");
    REQUIRE(c.read_line() == "joined " + room);
    return c;
}

// The peak resident memory of `pid` so far, in KiB.
std::size_t peak_rss_kib(pid_t pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6));
    }
    return 0;
}

}  // namespace

TEST_CASE("topics: every line reaches every other client of its room and nothing crosses rooms") {
    chat_server s;
    constexpr int per_room = 25, lines_each = 4;
    std::vector<line_client> clients;
    std::vector<std::string> room_of;
    for (int i = 0; i < 2 * per_room; ++i) {
        room_of.push_back(i % 2 == 0 ? "east" : "west");
        clients.push_back(join(s.port, room_of.back()));
    }
    // Everyone talks at once, then everyone reads: (per_room - 1) * lines_each lines each,
    // which the sockets hold.
    for (int k = 0; k < lines_each; ++k) {
        for (int i = 0; i < 2 * per_room; ++i)
            clients[i].send(room_of[i] + " " + std::to_string(i) + " " + std::to_string(k) + "\n");
    }
    for (int i = 0; i < 2 * per_room; ++i) {
        std::map<int, int> next_from;  // sender -> the line number expected next
        for (int n = 0; n < (per_room - 1) * lines_each; ++n) {
            const auto line = clients[i].read_line(10s);
            REQUIRE_MESSAGE(line, "client " << i << " got " << n << " lines");
            char room[16];
            int sender = -1, k = -1;
            REQUIRE(std::sscanf(line->c_str(), "v1:%15s %d %d", room, &sender, &k) == 3);
            CHECK(room == room_of[i]);  // nothing from the other room
            CHECK(sender != i);         // nothing of its own
            CHECK(k == next_from[sender]++);
        }
        CHECK(next_from.size() == per_room - 1);
    }
    // Nothing more came before a last line, sent after everything above was delivered.
    clients[0].send("last\n");
    clients[1].send("last\n");
    for (int i = 2; i < 2 * per_room; ++i) CHECK(clients[i].read_line() == "v1:last");
    CHECK(s.metric("plugd_topic_publishes_total") == 2 * per_room * lines_each + 2);
    CHECK(s.metric(R"(plugd_topic_deliveries_total{listener="main"})") ==
          2 * per_room * lines_each * (per_room - 1) + 2 * (per_room - 1));
    CHECK(s.metric(R"(plugd_topic_slow_subscribers_total{listener="main",action="close"})") == 0);
}

namespace {

// Readers in a thread each, reading every line of the chat as it comes.
struct readers {
    readers(std::vector<line_client>& clients, std::size_t expected) {
        for (auto& c : clients) {
            threads.emplace_back([this, &c, expected] {
                for (std::size_t n = 0; n < expected; ++n) {
                    const auto line = c.read_line(20s);
                    std::lock_guard lock{mutex};
                    if (!line || line->size() < 16) {
                        failed = true;
                        break;
                    }
                    ++got[&c];
                    changed.notify_all();
                }
                std::lock_guard lock{mutex};
                done_count++;
                changed.notify_all();
            });
        }
        clients_ = &clients;
    }
    ~readers() {
        for (auto& t : threads) t.join();
    }
    // Waits until every reader has `n` lines; false at the deadline or when one failed.
    bool wait_all(std::size_t n) {
        std::unique_lock lock{mutex};
        return changed.wait_for(lock, 20s, [&] {
            if (failed) return true;
            for (auto& c : *clients_)
                if (got[&c] < n) return false;
            return true;
        }) && !failed;
    }
    std::mutex mutex;
    std::condition_variable changed;
    std::map<const line_client*, std::size_t> got;
    std::size_t done_count = 0;
    bool failed = false;
    std::vector<std::thread> threads;
    std::vector<line_client>* clients_ = nullptr;
};

// One talker sends `lines` lines of 4 KiB into room "r", in steps that the readers must
// have received whole before the next (so they never lag), while a member of the room that
// never reads (the caller's) lags ever more. Returns the growth of plugd's peak resident
// memory, KiB.
std::size_t chat_past_a_sleeper(chat_server& s, std::size_t lines) {
    line_client talker = join(s.port, "r");
    std::vector<line_client> listening;
    listening.push_back(join(s.port, "r"));
    listening.push_back(join(s.port, "r"));
    const std::size_t before = peak_rss_kib(s.process->pid());
    readers r{listening, lines};
    const std::string body(4000, 'm');
    constexpr std::size_t step = 16;
    for (std::size_t sent = 0; sent < lines;) {
        std::string batch;
        for (std::size_t i = 0; i < step && sent < lines; ++i, ++sent)
            batch += std::to_string(sent) + body + "\n";
        talker.send(batch);
        REQUIRE_MESSAGE(r.wait_all(sent), "the readers fell behind at line " << sent);
    }
    return peak_rss_kib(s.process->pid()) - before;
}

}  // namespace

TEST_CASE(
    "topics: a subscriber that never reads is closed at max_queued_messages, memory bounded, "
    "while the others get every line") {
    chat_server s{R"({ "max_queued_messages": 64, "write_timeout_ms": 60000 })"};
    line_client sleeper = join_small(s.port, "r");
    // 32 MB through the room: unbounded, what the sleeper cannot take would stay in plugd.
    const std::size_t growth = chat_past_a_sleeper(s, 8000);
    CHECK(sleeper.wait_closed(10s));
    CHECK(s.metric(R"(plugd_topic_slow_subscribers_total{listener="main",action="close"})") == 1);
    CHECK(s.metric(R"(plugd_topic_slow_subscribers_total{listener="main",action="unsubscribe"})") ==
          0);
    CHECK(s.metric(R"(plugd_topic_deliveries_total{listener="main"})") >= 2 * 8000);
    CHECK_MESSAGE(s.process->wait_for_log("fell more than max_queued_messages (64) behind on a "
                                          "topic: closed (slow_subscriber \"close\")"),
                  s.process->log());
    CHECK(s.process->count_log("failed a request") == 0);  // an outcome, not a plugin failure
    if (!sanitized)
        CHECK_MESSAGE(growth < 8 * 1024, "peak resident memory grew " << growth << " KiB");
    // The chat goes on.
    line_client a = join(s.port, "r");
    line_client b = join(s.port, "r");
    a.send("still here\n");
    CHECK(b.read_line() == "v1:still here");
}

TEST_CASE(
    "topics: with slow_subscriber unsubscribe, a subscriber that never reads only loses its "
    "subscription") {
    chat_server s{
        R"({ "max_queued_messages": 64, "slow_subscriber": "unsubscribe", "write_timeout_ms": 60000 })"};
    line_client sleeper = join_small(s.port, "r");
    const std::size_t growth = chat_past_a_sleeper(s, 8000);
    CHECK(s.metric(R"(plugd_topic_slow_subscribers_total{listener="main",action="unsubscribe"})") ==
          1);
    CHECK(s.metric(R"(plugd_topic_slow_subscribers_total{listener="main",action="close"})") == 0);
    CHECK_MESSAGE(s.process->wait_for_log("behind on a topic: unsubscribed from that topic"),
                  s.process->log());
    if (!sanitized)
        CHECK_MESSAGE(growth < 8 * 1024, "peak resident memory grew " << growth << " KiB");
    // Still connected: what it had queued is still coming, and then the room goes on
    // without it.
    CHECK_FALSE(sleeper.wait_closed(200ms));
}

TEST_CASE("topics: during a reload, connections on the old version chat with those on the new") {
    chat_server s{R"({ "reload_drain_timeout_ms": 60000 })"};
    line_client old_one = join(s.port, "r");
    line_client old_two = join(s.port, "r");
    s.reload_to("line_chat_v2", 2);
    line_client new_one = join(s.port, "r");
    line_client new_two = join(s.port, "r");
    old_one.send("from the old\n");
    CHECK(old_two.read_line() == "v1:from the old");
    CHECK(new_one.read_line() == "v1:from the old");
    CHECK(new_two.read_line() == "v1:from the old");
    new_one.send("from the new\n");
    CHECK(old_one.read_line() == "v2:from the new");
    CHECK(old_two.read_line() == "v2:from the new");
    CHECK(new_two.read_line() == "v2:from the new");
    CHECK(s.process->count_log("unloaded after draining") == 0);  // the old ones hold v1
    old_one.shutdown_send();
    old_two.shutdown_send();
    CHECK(old_one.read_to_eof() == "");
    CHECK(old_two.read_to_eof() == "");
    CHECK_MESSAGE(s.process->wait_for_log("generation 1: unloaded after draining"),
                  s.process->log());
    new_two.send("after v1 left\n");
    CHECK(new_one.read_line() == "v2:after v1 left");
}

TEST_CASE(
    "topics: a connection waiting in next() on the old version is closed at "
    "reload_drain_timeout_ms, and that version goes") {
    chat_server s{R"({ "reload_drain_timeout_ms": 300 })"};
    line_client old_one = join(s.port, "r");
    s.reload_to("line_chat_v2", 2);
    CHECK(old_one.wait_closed(5s));
    CHECK_MESSAGE(s.process->wait_for_log("generation 1: unloaded"), s.process->log());
    CHECK(s.process->count_log("failed a request") == 0);  // the drain's doing, not the plugin's
    line_client a = join(s.port, "r");
    line_client b = join(s.port, "r");
    a.send("on v2\n");
    CHECK(b.read_line() == "v2:on v2");
}

TEST_CASE("topics: with workers, the master's /metrics sums what each worker's topics counted") {
    chat_server s{"{}", 2};
    line_client c = join(s.port, "alone");
    for (int i = 0; i < 5; ++i) c.send("line " + std::to_string(i) + "\n");
    // Counted in the worker's ledger as each line is published; the master reads it.
    double publishes = -1;
    for (int i = 0; i < 500 && publishes != 5; ++i) {
        publishes = s.metric("plugd_topic_publishes_total");
        if (publishes != 5) std::this_thread::sleep_for(10ms);
    }
    CHECK(publishes == 5);
}
