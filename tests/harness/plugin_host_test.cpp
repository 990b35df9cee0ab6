// The plugin test harness (<plugd/testing.hpp>) tested as a plugin author uses it: a built
// plugin file and handler classes compiled in, called without a server or a socket.
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

#include <boost/system/system_error.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using plugd::testing::options;
using plugd::testing::plugin_host;

namespace {

std::filesystem::path test_plugin(const char* name) {
    return std::filesystem::path{PLUGD_TEST_PLUGIN_DIR} / (std::string{name} + ".so");
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

// Notes, across calls on several threads, how many calls were in handle() at once and on
// which threads they ran.
struct overlap {
    static inline std::mutex mutex;
    static inline int now = 0, most = 0;
    static inline std::set<std::thread::id> threads;
};

class overlapping final : public plugd::handler {
  public:
    explicit overlapping(plugd::context& ctx) : ctx_{ctx} {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        {
            std::lock_guard lock{overlap::mutex};
            overlap::most = std::max(overlap::most, ++overlap::now);
            overlap::threads.insert(std::this_thread::get_id());
        }
        co_await ctx_.sleep_for(50ms);
        {
            std::lock_guard lock{overlap::mutex};
            --overlap::now;
        }
        out << req.message();
    }

  private:
    plugd::context& ctx_;
};

// Sleeps as long as the message says (in seconds), and says whether it was cancelled.
class sleeper final : public plugd::handler {
  public:
    explicit sleeper(plugd::context& ctx) : ctx_{ctx} {
        if (ctx.config().contains("refuse")) throw std::invalid_argument("refuse: as asked");
        if (ctx.config().contains("fail")) throw std::runtime_error("cannot open the database");
    }
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        try {
            co_await ctx_.sleep_for(std::chrono::seconds{std::stoi(std::string{req.message()})});
        } catch (const boost::system::system_error&) {
            ctx_.shared().increment("cancelled");
            throw;
        }
        out << "slept " << req.message();
    }

  private:
    plugd::context& ctx_;
};

// An HTTP answer with a status and a header.
class teapot final : public plugd::handler {
  public:
    explicit teapot(plugd::context&) {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        out.status(418);
        out.header("X-Method", req.method());
        out << req.message() << " " << req.header("x-kind");
        co_return;
    }
};

// A whole-connection plugin: answers each line upper-cased.
class shouter final : public plugd::handler {
  public:
    explicit shouter(plugd::context&) {}
    plugd::task<void> serve(plugd::connection& conn) override {
        char chunk[256];
        for (;;) {
            const std::size_t n = co_await conn.read_some(chunk, sizeof chunk);
            if (n == 0) co_return;
            std::string out{chunk, n};
            for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            co_await conn.write(out);
        }
    }
};

// A one-connection line server on 127.0.0.1 answering "echo:<line>", for connect().
class line_server {
  public:
    line_server() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 4) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        thread_ = std::thread{[this] {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            std::string line;
            char ch;
            while (::read(c, &ch, 1) == 1) {
                if (ch != '\n') {
                    line += ch;
                    continue;
                }
                const std::string reply = "echo:" + line + "\n";
                if (::write(c, reply.data(), reply.size()) < 0) break;
                line.clear();
            }
            ::close(c);
        }};
    }
    ~line_server() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    int port = 0;

  private:
    int fd_ = -1;
    std::thread thread_;
};

}  // namespace

TEST_CASE("harness: a built plugin answers calls, and its shared state can be seeded and read") {
    plugin_host host{test_plugin("facilities")};
    CHECK(host.call("peer") == "f1:127.0.0.1:40000");
    host.shared().set("k", "seeded");
    CHECK(host.call("get k") == "f1:seeded");
    CHECK(host.call("set k v") == "f1:OK");
    CHECK(host.shared().get("k") == "v");
    // The offloaded job's exception reaches the caller, as the handler lets it through.
    CHECK_THROWS_WITH_AS(host.call("fail"), "the job failed", std::runtime_error);
    CHECK(host.call("block 10") == "f1:offloaded");
}

TEST_CASE("harness: call_concurrently runs the calls at once, on every worker thread") {
    plugin_host host = plugin_host::of<overlapping>({.threads = 3});
    std::vector<std::string> messages;
    for (int i = 0; i < 12; ++i) messages.push_back("m" + std::to_string(i));
    CHECK(host.call_concurrently(messages) == messages);  // in the messages' order
    std::lock_guard lock{overlap::mutex};
    CHECK(overlap::most >= 3);
    CHECK(overlap::threads.size() == 3);
    CHECK(overlap::now == 0);
}

TEST_CASE("harness: concurrent increments of the shared state lose none") {
    plugin_host host{test_plugin("facilities")};
    const std::vector<std::string> messages(200, "incr n");
    const auto replies = host.call_concurrently(messages);
    std::set<std::string> distinct(replies.begin(), replies.end());
    CHECK(distinct.size() == 200);
    CHECK(host.shared().get("n") == "200");
}

TEST_CASE(
    "harness: a reload keeps the shared state, and a call in flight finishes on the old version") {
    plugin_host host{test_plugin("facilities")};
    CHECK(host.call("set k kept") == "f1:OK");
    auto in_flight = host.start("block 2000");  // longer than a reload takes, even under TSan
    host.reload(test_plugin("facilities_v2"), nlohmann::json::object());
    CHECK(host.call("get k") == "f2:kept");  // the new version, the same state
    CHECK(host.draining_versions() == 1);    // the old one still runs the call
    CHECK(in_flight.get() == "f1:offloaded");
    for (int i = 0; i < 2000 && host.draining_versions() > 0; ++i) std::this_thread::sleep_for(5ms);
    CHECK(host.draining_versions() == 0);
    const auto log = host.log_lines();
    CHECK(std::find(log.begin(), log.end(), "info plugin test: stop f1") != log.end());
}

TEST_CASE("harness: a reload the new version refuses keeps the old one, with plugd's message") {
    plugin_host host = plugin_host::of<sleeper>();
    CHECK_THROWS_WITH_AS(host.reload({{"refuse", true}}),
                         doctest::Contains("refused its config (/plugins/test/config): refuse: as "
                                           "asked"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(host.reload({{"fail", true}}),
                         doctest::Contains("failed to start: cannot open the database"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(plugin_host{test_plugin("wrong_abi")},
                         doctest::Contains("built for another plugd ABI"), std::runtime_error);
    CHECK_THROWS_WITH_AS(plugin_host(test_plugin("echo"), {.config = {{"fail_start", true}}}),
                         doctest::Contains("start() failed: fail_start is set"),
                         std::runtime_error);
    options fast;
    fast.manual_clock = true;
    plugin_host still{plugin_host::of<sleeper>(fast)};
    auto call = still.start("0");
    CHECK(call.get() == "slept 0");
}

TEST_CASE("harness: cancelling a call in the middle ends its wait, as a timeout does") {
    plugin_host host = plugin_host::of<sleeper>();
    auto call = host.start("3600");
    call.cancel();
    try {
        call.get();
        FAIL("a cancelled call returned");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == boost::asio::error::operation_aborted);
    }
    CHECK(host.shared().get("cancelled") == "1");
}

TEST_CASE("harness: an offloaded job outlives its cancelled caller and keeps the version") {
    plugin_host host{test_plugin("facilities")};
    {
        auto call = host.start("block 2000");
        call.cancel();
        CHECK_THROWS_AS(call.get(), boost::system::system_error);
    }  // a call that threw holds its version until it is destroyed
    host.reload(nlohmann::json::object());
    CHECK(host.draining_versions() == 1);  // the job still runs on an offload thread
    for (int i = 0; i < 2000 && host.draining_versions() > 0; ++i) std::this_thread::sleep_for(5ms);
    CHECK(host.draining_versions() == 0);
}

TEST_CASE("harness: on a manual clock, sleeps and periodic tasks wait for advance()") {
    options manual;
    manual.manual_clock = true;
    manual.config = {{"tick_ms", 100}};
    plugin_host host{test_plugin("facilities"), manual};
    host.advance(1000ms);
    CHECK(host.call("ticks") == "f1:10");

    plugin_host slow = plugin_host::of<sleeper>({.manual_clock = true});
    auto call = slow.start("3600");
    slow.advance(3599s);
    CHECK_FALSE(call.ready());
    slow.advance(1s);
    CHECK(call.get() == "slept 3600");
    CHECK_THROWS_AS(plugin_host::of<sleeper>().advance(1s), std::logic_error);
}

TEST_CASE("harness: a call that does not return in wait_limit throws instead of hanging") {
    plugin_host host = plugin_host::of<sleeper>({.manual_clock = true, .wait_limit = 100ms});
    CHECK_THROWS_WITH_AS(host.call("60"), doctest::Contains("advance() the clock"),
                         std::runtime_error);
    host.advance(60s);  // lets it end, so the host can stop
}

TEST_CASE("harness: outbound connections reach a real local server") {
    line_server server;
    plugin_host host{test_plugin("facilities")};
    CHECK(host.call("fetch " + std::to_string(server.port) + " hi") == "f1:echo:hi");
    CHECK(host.call("fetch " + std::to_string(server.port) + " again") == "f1:echo:again");
}

TEST_CASE(
    "harness: call_http gives the handler plugd's HTTP request and returns status and fields") {
    plugin_host host = plugin_host::of<teapot>();
    const auto r = host.call_http("GET", "/hello%20there", {}, {{"X-Kind", "earl grey"}});
    CHECK(r.status == 418);
    CHECK(r.body == "hello there earl grey");
    CHECK(r.fields == "X-Method: GET\r\n");
    CHECK(host.call_http("POST", "/", "the body").body == "the body ");
}

TEST_CASE("harness: a whole-connection plugin is served through connect()") {
    plugin_host host = plugin_host::of<shouter>();
    auto client = host.connect();
    client.write("hello\n");
    CHECK(client.read_until("\n") == "HELLO\n");
    client.write("again\n");
    CHECK(client.read_exactly(6) == "AGAIN\n");
    client.close();
    // A plugin built before SDK 1.3 has no serve() to call: refused up front.
    plugin_host older{test_plugin("echo_sdk_previous_minor")};
    CHECK_THROWS_WITH_AS(older.connect(), doctest::Contains("older than 1.3"), std::runtime_error);
    // A line plugin (it does not override serve()): refused up front, saying so, as plugd
    // refuses it on a raw listener.
    plugin_host lines{test_plugin("facilities")};
    CHECK_THROWS_WITH_AS(lines.connect(),
                         doctest::Contains("does not override plugd::handler::serve"),
                         std::runtime_error);
}

// ---- topics ----

namespace {

// Joins the line chat's `room` (its first line names it) and waits until it has joined.
plugd::testing::raw_client join(plugin_host& host, const std::string& room) {
    auto c = host.connect();
    c.write(room + "\n");
    REQUIRE(c.read_until("\n") == "joined " + room + "\n");
    return c;
}

}  // namespace

TEST_CASE("harness: a line chat's connections reach each other through topics, rooms apart") {
    plugin_host host{test_plugin("line_chat")};  // its two worker threads share the topics
    auto ann = join(host, "lobby");
    auto bob = join(host, "lobby");
    auto cid = join(host, "attic");
    auto dee = join(host, "attic");
    ann.write("hi\n");
    CHECK(bob.read_until("\n") == "v1:hi\n");  // not back to ann: she is the except
    cid.write("psst\n");
    CHECK(dee.read_until("\n") == "v1:psst\n");
    bob.write("hello\n");
    CHECK(ann.read_until("\n") == "v1:hello\n");
    // What a task or an offloaded job publishes, as the test publishes it.
    host.publish("chat/lobby", "news");
    CHECK(ann.read_until("\n") == "news\n");  // and not "psst" before it
    CHECK(bob.read_until("\n") == "news\n");
    for (auto* c : {&ann, &bob, &cid, &dee}) c->close();
}

TEST_CASE("harness: after a reload, old and new connections still chat through the topics") {
    plugin_host host{test_plugin("line_chat")};
    auto old_one = join(host, "r");
    host.reload(test_plugin("line_chat_v2"), {});
    auto new_one = join(host, "r");
    old_one.write("from v1\n");
    CHECK(new_one.read_until("\n") == "v1:from v1\n");
    new_one.write("from v2\n");
    CHECK(old_one.read_until("\n") == "v2:from v2\n");
    CHECK(host.draining_versions() == 1);  // the old connection keeps its version
    old_one.close();
    new_one.close();
}

// ---- chains (options::filters) ----

namespace {

using plugd::testing::chain_link;

// A filter: answers "stop" by itself; otherwise attaches who it is (not for "anon..."),
// runs the rest of the chain, and then reads and changes the reply: it notes the status
// the plugin set in a header, turns a 418 into a 200 and adds to the body.
class gatekeeper final : public plugd::handler {
  public:
    explicit gatekeeper(plugd::context& ctx) : ctx_{ctx} {}
    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        if (req.message() == "stop") {
            out.status(403);
            out << "stopped by " << ctx_.instance_name();
            co_return;
        }
        if (req.message() == "boom") throw std::runtime_error("the gate failed");
        if (!req.message().starts_with("anon")) req.attach("who", ctx_.instance_name());
        co_await next(req, out);
        out.header("X-Plugin-Status", std::to_string(out.status()));
        if (out.status() == 418) out.status(200);
        out << " via " << ctx_.instance_name();
    }

  private:
    plugd::context& ctx_;
};

// A filter that counts the calls in its own shared state and attaches the count.
class call_counter final : public plugd::handler {
  public:
    explicit call_counter(plugd::context& ctx) : ctx_{ctx} {}
    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        req.attach("n", std::to_string(ctx_.shared().increment("calls")));
        co_await next(req, out);
    }

  private:
    plugd::context& ctx_;
};

// The plugin at the end of the chains: answers with what the filters attached; "tea" gets
// 418. Counts its calls in its own shared state.
class attached_reader final : public plugd::handler {
  public:
    explicit attached_reader(plugd::context& ctx)
        : ctx_{ctx}, prefix_{ctx.config().value("prefix", "")} {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        ctx_.shared().increment("handled");
        if (req.message() == "tea") out.status(418);
        out << prefix_ << req.message() << " who=" << req.attached("who")
            << " n=" << req.attached("n") << " token=" << req.attached("bearer_auth.token");
        co_return;
    }

  private:
    plugd::context& ctx_;
    std::string prefix_;
};

options gate_then_counter() {
    options o;
    o.filters = {chain_link::of<gatekeeper>({}, "gate"), chain_link::of<call_counter>()};
    return o;
}

}  // namespace

TEST_CASE("harness: a filter that answers by itself ends the call there") {
    plugin_host host = plugin_host::of<attached_reader>(gate_then_counter());
    CHECK(host.call("stop") == "stopped by gate");
    const auto r = host.call_http("GET", "/stop");
    CHECK(r.status == 403);
    CHECK(r.fields.empty());
    CHECK(r.body == "stopped by gate");
    // Neither the filter after it nor the plugin ran.
    CHECK_FALSE(host.shared("filter1").get("calls").has_value());
    CHECK_FALSE(host.shared().get("handled").has_value());
}

TEST_CASE("harness: a filter runs the rest of the chain, then reads and changes the reply") {
    plugin_host host = plugin_host::of<attached_reader>(gate_then_counter());
    auto r = host.call_http("GET", "/tea");
    CHECK(r.status == 200);  // the plugin's 418, changed by the filter
    CHECK(r.fields == "X-Plugin-Status: 418\r\n");
    CHECK(r.body == "tea who=gate n=1 token= via gate");
    r = host.call_http("POST", "/", "coffee");
    CHECK(r.status == 200);
    CHECK(r.fields == "X-Plugin-Status: 200\r\n");
    CHECK(r.body == "coffee who=gate n=2 token= via gate");
    CHECK_THROWS_WITH_AS(host.call("boom"), "the gate failed", std::runtime_error);
}

TEST_CASE("harness: what filters attach, the plugins after them read, for that call only") {
    plugin_host host = plugin_host::of<attached_reader>(gate_then_counter());
    CHECK(host.call("hi") == "hi who=gate n=1 token= via gate");
    CHECK(host.call("anon") == "anon who= n=2 token= via gate");
    // Each instance has its own shared state.
    CHECK(host.shared("filter1").get("calls") == "2");
    CHECK_FALSE(host.shared("gate").get("calls").has_value());
    CHECK(host.shared().get("handled") == "2");
    CHECK_THROWS_AS(host.shared("nobody"), std::out_of_range);
    // Calls at once on every thread each keep their own attachments.
    std::vector<std::string> messages;
    for (int i = 0; i < 40; ++i) messages.push_back((i % 2 ? "anon" : "m") + std::to_string(i));
    const auto replies = host.call_concurrently(messages);
    std::set<std::string> counts;
    for (std::size_t i = 0; i < replies.size(); ++i) {
        CAPTURE(replies[i]);
        const std::string expected_start = messages[i] + (i % 2 ? " who= n=" : " who=gate n=");
        CHECK(replies[i].starts_with(expected_start));
        counts.insert(
            replies[i].substr(expected_start.size(),
                              replies[i].find(' ', expected_start.size()) - expected_start.size()));
    }
    CHECK(counts.size() == 40);
}

TEST_CASE("harness: a reload replaces the plugin and keeps its filters") {
    plugin_host host = plugin_host::of<attached_reader>(gate_then_counter());
    CHECK(host.call("hi") == "hi who=gate n=1 token= via gate");
    host.reload({{"prefix", "v2 "}});
    CHECK(host.call("hi") == "v2 hi who=gate n=2 token= via gate");
}

TEST_CASE("harness: a built filter runs in the chain, and a plugin that is no filter is refused") {
    options auth;
    auth.filters.push_back(
        {.plugin_file = test_plugin("bearer_auth"), .config = {{"tokens", {"t0", "t1"}}}});
    plugin_host host = plugin_host::of<attached_reader>(auth);
    CHECK(host.call_http("GET", "/x").status == 401);
    CHECK(host.call_http("GET", "/x", {}, {{"Authorization", "Bearer t1"}}).body ==
          "x who= n= token=1");

    options echo;
    echo.filters.push_back({.plugin_file = test_plugin("echo")});
    CHECK_THROWS_WITH_AS(
        plugin_host::of<attached_reader>(echo),
        doctest::Contains(("options::filters[0]: plugin \"echo\" (" + test_plugin("echo").string() +
                           ") does not override plugd::handler::filter(plugd::request, "
                           "plugd::reply&, plugd::chain_next), so it can only be the last "
                           "instance of a chain")
                              .c_str()),
        std::runtime_error);
    options older;
    older.filters.push_back({.plugin_file = test_plugin("echo_sdk_previous_minor")});
    CHECK_THROWS_WITH_AS(plugin_host::of<attached_reader>(older),
                         doctest::Contains("was built against an SDK older than 1.4, which has "
                                           "no filters"),
                         std::runtime_error);
    // A filter that refuses its config: plugd's message, naming the filter's instance.
    options refused;
    refused.filters.push_back({.plugin_file = test_plugin("bearer_auth"), .instance = "auth"});
    CHECK_THROWS_WITH_AS(plugin_host::of<attached_reader>(refused),
                         doctest::Contains("refused its config (/plugins/auth/config): tokens: "
                                           "missing"),
                         std::runtime_error);
}

TEST_CASE("harness: a chain needs distinct instance names, and has no whole connections") {
    options same;
    same.filters.push_back(chain_link::of<gatekeeper>({}, "test"));
    CHECK_THROWS_WITH_AS(plugin_host::of<attached_reader>(same),
                         doctest::Contains("options::filters[0]: the instance name \"test\" is "
                                           "already taken"),
                         std::invalid_argument);
    plugin_host host = plugin_host::of<shouter>(gate_then_counter());
    CHECK_THROWS_WITH_AS(host.connect(), doctest::Contains("no request for a filter to see"),
                         std::runtime_error);
}
