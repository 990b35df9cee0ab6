// WebSocket sessions through the real plugd, with Debian's python3-websockets as the real
// client (tests/clients/websocket_client.py) and, for what real clients refuse to send
// (bad UTF-8, unmasked frames, never answering a ping), a few hand-made frames. The
// plugin is tests/plugins/ws_chat.cpp: an echo room, rooms of a chat, a raw lobby.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "line_client.hpp"
#include "metric_samples.hpp"
#include "plugd_process.hpp"
#include "skip_test.hpp"
#include "websocket_frames.hpp"

using namespace plugd::test;

namespace {

const std::string python = "/usr/bin/python3";  // Debian's, with python3-websockets
const std::string client_script = PLUGD_SOURCE_DIR "/tests/clients/websocket_client.py";

// Whether Debian's python3 has python3-websockets (checked once).
bool have_websockets() {
    static const bool found = run_program(python, {"-c", "import websockets"}, 20s).status == 0;
    return found;
}
#define SKIP_WITHOUT_WEBSOCKETS() \
    if (!have_websockets())       \
    return skip_test("python3-websockets is not installed (apt-get install python3-websockets)")

// Whether Node and Debian's node-ws are installed (checked once).
bool have_node_ws() {
    static const bool found =
        run_program("/bin/sh", {"-c", "NODE_PATH=/usr/share/nodejs node -e \"require('ws')\""}, 20s)
            .status == 0;
    return found;
}

// Runs a scenario of websocket_client.js with Node's ws; it passes when it exits 0.
void node_scenario(const std::string& args) {
    const run_result r =
        run_program("/bin/sh",
                    {"-c", "NODE_PATH=/usr/share/nodejs exec node '" PLUGD_SOURCE_DIR
                           "/tests/clients/websocket_client.js' " +
                               args},
                    60s);
    INFO(r.output);
    CHECK(r.status == 0);
}

// Runs a scenario of websocket_client.py; it passes when it exits 0.
void scenario(const std::vector<std::string>& args, milliseconds timeout = 60s) {
    std::vector<std::string> argv{client_script};
    argv.insert(argv.end(), args.begin(), args.end());
    const run_result r = run_program(python, argv, timeout);
    INFO(r.output);
    CHECK(r.status == 0);
}

// plugd with ws_chat (p.so) on: "web", an http listener whose route /room/ leads to it and
// /secure/ to it behind bearer_auth; "tight", the same with small WebSocket limits (a
// 1024-byte message, a ping every 100 ms of silence, closed after 600 ms without a frame);
// "lobby", a raw listener. Two serving threads, an admin endpoint. `extra`: more top-level
// settings; `web_extra`: more settings of "web".
struct ws_server {
    explicit ws_server(const std::string& extra = "", const std::string& web_extra = "")
        : plugins{tmp.path() / "plugins"} {
        std::filesystem::create_directory(plugins);
        install_plugin(test_plugin_dir() / "ws_chat.so", plugins, "p.so");
        install_plugin(test_plugin_dir() / "bearer_auth.so", plugins, "auth.so");
        const std::string routes = R"("routes": [ { "path": "/room/", "plugin": "p" },
                       { "path": "/secure/", "chain": ["auth", "p"] } ])";
        cfg = tmp.write("server.json", R"({ "threads": 2, "plugin_dir": ")" + plugins.string() +
                                           R"(", "plugins": { "p": { "file": "p.so" },
                "auth": { "file": "auth.so", "config": { "tokens": ["a-long-test-token"] } } },
            "listeners": [
              { "name": "web", "port": 0, "framing": "http", )" +
                                           routes + web_extra + R"( },
              { "name": "tight", "port": 0, "framing": "http", )" +
                                           routes + R"(,
                "websocket": { "max_message_bytes": 1024, "ping_interval_ms": 100,
                               "idle_timeout_ms": 600 } },
              { "name": "lobby", "port": 0, "framing": "raw", "plugin": "p" } ],
            "admin": { "address": "127.0.0.1", "port": 0 } )" +
                                           extra + "}");
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        web = process->port("web");
        tight = process->port("tight");
        lobby = process->port("lobby");
        admin = process->admin_port();
        REQUIRE(process->wait_for_log("serving generation 1"));
    }

    temp_dir tmp;
    std::filesystem::path plugins;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t web = 0, tight = 0, lobby = 0, admin = 0;
};

}  // namespace

TEST_CASE("websocket: echo, binary, fragments, ping and a client's close, with a real client") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    scenario({"echo", std::to_string(s.web)});
}

TEST_CASE("websocket: the same over TLS (wss), with a real client") {
    SKIP_WITHOUT_WEBSOCKETS();
    temp_dir tmp;
    const auto made = run_program(
        "/bin/sh",
        {"-c", "cd '" + tmp.path().string() +
                   "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                   "-keyout key.pem -out cert.pem -days 2 -subj /CN=localhost "
                   "-addext subjectAltName=IP:127.0.0.1 2>&1"});
    REQUIRE_MESSAGE(made.status == 0, made.output);
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "ws_chat.so", plugins, "p.so");
    const auto cfg = tmp.write("server.json", R"({ "plugin_dir": ")" + plugins.string() +
                                                  R"(", "plugins": { "p": { "file": "p.so" } },
        "listeners": [ { "name": "web", "port": 0, "framing": "http",
            "routes": [ { "path": "/room/", "plugin": "p" } ],
            "tls": { "certificate": "cert.pem", "private_key": "key.pem" } } ] })");
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t port = plugd.port("web");
    scenario({"echo", std::to_string(port), (tmp.path() / "cert.pem").string()});
}

TEST_CASE("websocket: 50 clients in two rooms across two threads, nothing crosses rooms") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    scenario({"rooms", std::to_string(s.web), "50", "2"});
    const auto metrics = scrape_metrics(s.admin);
    CHECK(metrics.at(R"(plugd_websocket_upgrades_total{listener="web"})") == 50);
    CHECK(metrics.at(R"(plugd_websocket_messages_total{listener="web",direction="in"})") == 50);
    // 25 clients a room, each message to the 24 others.
    CHECK(metrics.at(R"(plugd_topic_deliveries_total{listener="web"})") == 50 * 24);
}

TEST_CASE("websocket: Node's ws as the client: 40 clients in two rooms, binary, a client's close") {
    if (!have_node_ws())
        return skip_test("node or node-ws is not installed (apt-get install nodejs node-ws)");
    ws_server s;
    node_scenario("rooms " + std::to_string(s.web) + " 40 2");
    node_scenario("echo " + std::to_string(s.web));
}

TEST_CASE("websocket: 1009 for a message over max_message_bytes") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    scenario({"too_big", std::to_string(s.tight), "1024"});
}

TEST_CASE("websocket: 1007 for text that is not UTF-8, 1002 for an unmasked frame") {
    ws_server s;
    {
        line_client c = upgrade(s.web, "/room/echo");
        c.send(client_frame(0x1, "fine"));
        const auto echoed = read_frame(c);
        REQUIRE(echoed);
        CHECK(echoed->opcode == 0x1);
        CHECK(echoed->payload == "fine");
        c.send(client_frame(0x1, "bad \xc3\x28 utf-8"));
        const auto closed = read_frame(c);
        REQUIRE(closed);
        CHECK(closed->opcode == 0x8);
        CHECK(closed->close_code() == 1007);
        CHECK(c.read_to_eof());  // and the connection ends
    }
    {
        line_client c = upgrade(s.web, "/room/echo");
        c.send(client_frame(0x1, "not masked", false));
        const auto closed = read_frame(c);
        REQUIRE(closed);
        CHECK(closed->opcode == 0x8);
        CHECK(closed->close_code() == 1002);
        // The server closes the connection once the session is counted.
        CHECK(c.read_to_eof());
    }
    const auto metrics = scrape_metrics(s.admin);
    CHECK(metrics.at(R"(plugd_websocket_closes_total{listener="web",code="1007"})") == 1);
    CHECK(metrics.at(R"(plugd_websocket_closes_total{listener="web",code="1002"})") == 1);
}

TEST_CASE("websocket: a plugin's close with a code, a filter's 401, 426 for a plain request") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    scenario({"server_close", std::to_string(s.web), "4001"});
    scenario({"refused", std::to_string(s.web), "/secure/echo", "a-long-test-token"});
    // ws_chat answers no plain requests: the core says what the route wants.
    const auto plain = http_request(s.web, "GET", "/room/echo");
    REQUIRE(plain);
    CHECK(plain->status == 426);
    // A bad upgrade (no key) is the core's 400, before any plugin.
    line_client c{s.web};
    c.send(
        "GET /room/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n");
    const auto status = c.read_line();
    REQUIRE(status);
    CHECK(status->rfind("HTTP/1.1 400 ", 0) == 0);
}

TEST_CASE("websocket: the access log has the upgrade and the session's end with its close code") {
    ws_server s{R"(, "log": { "level": "info" })", R"(, "access_log": true)"};
    line_client c = upgrade(s.web, "/room/echo");
    c.send(client_frame(0x8, std::string{"\x0f\xa1", 2} + "bye"));  // 4001
    const auto echo = read_frame(c);
    REQUIRE(echo);
    CHECK(echo->close_code() == 4001);
    INFO(s.process->log());
    CHECK(s.process->wait_for_log("route=0 plugin=p outcome=101 "));  // (routes without names)
    CHECK(s.process->wait_for_log("route=0 plugin=p outcome=websocket 4001 bytes_in=11 "));
}

TEST_CASE(
    "websocket: the core pings a quiet client, keeps one that answers, closes one that does not") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    // Python's client answers pings by itself: 1000 ms of silence outlives the 600 ms limit.
    scenario({"kept_alive", std::to_string(s.tight), "1000"});
    // This one never answers: a ping, then the idle timeout's close.
    line_client c = upgrade(s.tight, "/room/quiet");
    const auto ping = read_frame(c, 3s);
    REQUIRE(ping);
    CHECK(ping->opcode == 0x9);
    const auto closed = read_frame(c, 3s);
    REQUIRE(closed);
    CHECK(closed->opcode == 0x8);
    CHECK(closed->close_code() == 1000);
    CHECK(closed->payload.substr(2) == "idle timeout");
}

TEST_CASE("websocket: line clients and WebSocket clients in the lobby hear each other") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s;
    line_client line{s.lobby};
    plugd_process ws{python, {client_script, "lobby", std::to_string(s.web)}};
    REQUIRE_MESSAGE(ws.wait_for_log("joined"), ws.log());
    line.send("from a line client\n");
    CHECK(line.read_line() == "v1:from a websocket client");
    const auto status = ws.wait_exit(20s);
    INFO(ws.log());
    CHECK(status == 0);
}

TEST_CASE("websocket: a subscriber that never reads is closed by the policy, the others keep up") {
    ws_server s{R"(, "limits": { "max_queued_messages": 64 })"};
    line_client stuck = upgrade(s.web, "/room/flood", true);  // never reads again
    line_client reader = upgrade(s.web, "/room/flood");
    line_client talker = upgrade(s.web, "/room/flood");
    const std::string text(4000, 'm');
    constexpr int messages = 2000;  // 8 MB to the stuck one: past its socket buffers
    int got = 0;
    for (int i = 0; i < messages; ++i) {
        talker.send(client_frame(0x1, text));
        // The reader reads as it goes, and so never falls behind.
        while (got < i - 32) {
            const auto f = read_frame(reader);
            REQUIRE(f);
            REQUIRE(f->opcode == 0x1);
            ++got;
        }
    }
    while (got < messages) {
        const auto f = read_frame(reader);
        REQUIRE(f);
        REQUIRE(f->opcode == 0x1);
        CHECK(f->payload == "v1:" + text);
        ++got;
    }
    CHECK(got == messages);
    const auto metrics = scrape_metrics(s.admin);
    CHECK(metrics.at(R"(plugd_topic_slow_subscribers_total{listener="web",action="close"})") == 1);
}

TEST_CASE("websocket: a burst reaches every subscriber whole and in order") {
    // Many messages queued for a subscriber at once go out corked, several per write.
    ws_server s;
    line_client reader = upgrade(s.web, "/room/burst");
    line_client other = upgrade(s.web, "/room/burst");
    line_client talker = upgrade(s.web, "/room/burst");
    constexpr int messages = 300;
    std::string burst;
    for (int i = 0; i < messages; ++i) burst += client_frame(0x1, "m" + std::to_string(i));
    talker.send(burst);
    for (line_client* c : {&reader, &other}) {
        for (int i = 0; i < messages; ++i) {
            const auto f = read_frame(*c);
            REQUIRE(f);
            REQUIRE(f->opcode == 0x1);
            REQUIRE(f->payload == "v1:m" + std::to_string(i));
        }
    }
}

TEST_CASE("websocket: a message sent goes out while the plugin waits on something else") {
    // lazy-NAME forwards the first of two queued messages (so the send is corked, waiting
    // for the second) and then sleeps 30 s: the message must not wait for the sleep.
    ws_server s;
    line_client lazy = upgrade(s.web, "/room/lazy-nap");
    line_client talker = upgrade(s.web, "/room/nap");
    talker.send(client_frame(0x1, "first") + client_frame(0x1, "second"));
    const auto f = read_frame(lazy, 5s);
    REQUIRE(f);
    CHECK(f->payload == "v1:first");
}

TEST_CASE("websocket: a reload during a chat: old sessions chat with new ones, then get 1001") {
    SKIP_WITHOUT_WEBSOCKETS();
    ws_server s{R"(, "limits": { "reload_drain_timeout_ms": 1500 })"};
    plugd_process old_session{
        python, {client_script, "session_until_going_away", std::to_string(s.web), "lobby"}};
    REQUIRE_MESSAGE(old_session.wait_for_log("joined"), old_session.log());
    install_plugin(test_plugin_dir() / "ws_chat_v2.so", s.plugins, "p.so");
    s.process->signal(SIGHUP);
    REQUIRE(s.process->wait_for_log("reload: generation 2 "));
    plugd_process new_session{
        python, {client_script, "session_until_going_away", std::to_string(s.web), "lobby"}};
    REQUIRE_MESSAGE(new_session.wait_for_log("joined"), new_session.log());
    // A line client on the new version says "ping"; both sessions answer "pong" through
    // the version each is on.
    line_client line{s.lobby};
    line.send("ping\n");
    std::vector<std::string> answers;
    for (int i = 0; i < 2; ++i) {
        const auto a = line.read_line();
        REQUIRE(a);
        answers.push_back(*a);
    }
    std::sort(answers.begin(), answers.end());
    CHECK(answers == std::vector<std::string>{"v1:pong", "v2:pong"});
    CHECK(old_session.wait_for_log("got v2:ping"));
    // At the drain timeout the old session is told to go (1001); the new one stays.
    CHECK_MESSAGE(old_session.wait_for_log("closed 1001", 10s), old_session.log());
    CHECK(new_session.count_log("closed") == 0);
}

TEST_CASE("examples/chat: a line client and a WebSocket client of /room/lobby hear each other") {
    SKIP_WITHOUT_WEBSOCKETS();
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "example_chat.so", plugins, "chat.so");
    const auto cfg =
        tmp.write("server.json", R"({ "threads": 2, "plugin_dir": ")" + plugins.string() + R"(",
        "plugins": { "chat": { "file": "chat" } },
        "listeners": [ { "name": "web", "port": 0, "framing": "http",
                         "routes": [ { "path": "/room/", "plugin": "chat" } ] },
                       { "name": "lines", "port": 0, "framing": "raw", "plugin": "chat" } ] })");
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t web = plugd.port("web");
    line_client line{plugd.port("lines")};
    plugd_process ws{python,
                     {client_script, "room", std::to_string(web), "/room/lobby",
                      "hello from a line", "hello from the web"}};
    REQUIRE_MESSAGE(ws.wait_for_log("joined"), ws.log());
    line.send("hello from a line\n");
    // Unchanged: no tag, as the example promises.
    CHECK(line.read_line() == "hello from the web");
    const auto status = ws.wait_exit(20s);
    INFO(ws.log());
    CHECK(status == 0);
}

TEST_CASE("examples/live: every subscriber of /live gets a JSON tick from the background task") {
    SKIP_WITHOUT_WEBSOCKETS();
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "live.so", plugins, "live.so");
    const auto cfg = tmp.write("server.json", R"({ "plugin_dir": ")" + plugins.string() + R"(",
        "plugins": { "live": { "file": "live", "config": { "interval_ms": 50 } } },
        "listeners": [ { "name": "web", "port": 0, "framing": "http",
                         "routes": [ { "path": "/live", "plugin": "live" } ] } ] })");
    plugd_process plugd{{"-c", cfg.string()}};
    const std::uint16_t web = plugd.port("web");
    // Three subscribers at once, each seeing consecutive ticks.
    std::vector<std::unique_ptr<plugd_process>> clients;
    for (int i = 0; i < 3; ++i)
        clients.push_back(std::make_unique<plugd_process>(
            python,
            std::vector<std::string>{client_script, "ticks", std::to_string(web), "/live", "5"}));
    for (auto& c : clients) {
        const auto status = c->wait_exit(20s);
        INFO(c->log());
        CHECK(status == 0);
    }
    // A plain request: the plugin serves sessions only.
    const auto plain = http_request(web, "GET", "/live");
    REQUIRE(plain);
    CHECK(plain->status == 426);
}

TEST_CASE(
    "websocket: a plugin that serves only sessions and connections is refused on a line listener") {
    temp_dir tmp;
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    install_plugin(test_plugin_dir() / "ws_chat.so", plugins, "p.so");
    const auto config = [&](const std::string& framing) {
        return tmp.write("server.json", R"({ "plugin_dir": ")" + plugins.string() +
                                            R"(", "plugins": { "p": { "file": "p.so" } },
            "listeners": [ { "name": "l", "port": 0, "framing": ")" +
                                            framing + R"(", "plugin": "p" } ] })");
    };
    // On http it may stand alone: every request is an upgrade or gets 426.
    const run_result http = run_plugd({"-t", "-c", config("http").string()});
    INFO(http.output);
    CHECK(http.status == 0);
    const run_result line = run_plugd({"-t", "-c", config("line").string()});
    INFO(line.output);
    CHECK(line.status != 0);
    CHECK(line.output.find("does not override plugd::handler::handle") != std::string::npos);
}
