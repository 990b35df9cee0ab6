// Hostile clients and faulty handlers: every case ends in a bounded, logged outcome.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

struct served {
    served(const std::string& config, const std::string& limits, int threads = 2)
        : cfg{tmp.write("server.json", with_threads(one_listener_config(test_plugin_dir(), "echo",
                                                                        config, "line", limits),
                                                    threads))},
          process{{"-c", cfg.string()}},
          port{process.port()} {
        REQUIRE(process.wait_for_log("serving generation 1"));
    }
    static std::string with_threads(std::string text, int threads) {
        text.replace(text.find("\"threads\": 2"), 12, "\"threads\": " + std::to_string(threads));
        return text;
    }
    temp_dir tmp;
    std::filesystem::path cfg;
    plugd_process process;
    std::uint16_t port;
};

// User plus system CPU time of `pid`, in clock ticks, from /proc/<pid>/stat.
long cpu_ticks(pid_t pid) {
    std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    std::istringstream fields{text.substr(text.rfind(')') + 2)};
    std::string skip;
    for (int i = 3; i < 14; ++i) fields >> skip;  // fields 3..13
    long utime = 0, stime = 0;
    fields >> utime >> stime;
    return utime + stime;
}

// Answers "x" with "v1:x" within `timeout`, retrying connections refused or closed early.
bool serves_again(std::uint16_t port, milliseconds timeout, const std::string& reply = "v1:x") {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            line_client c{port};
            c.send("x\n");
            if (c.read_line(1s) == reply) return true;
        } catch (const std::exception&) {
        }
    }
    return false;
}

}  // namespace

TEST_CASE("a slowloris client trickling bytes without a newline is closed at idle_timeout_ms") {
    served s{"{}", R"({ "idle_timeout_ms": 300 })"};
    line_client c{s.port};
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    // The pacing is the attack itself: one byte every 50 ms, never a whole line.
    for (int i = 0; i < 100 && !closed; ++i) {
        try {
            c.send("a");
        } catch (const std::exception&) {
            closed = true;
            break;
        }
        if (c.read_to_eof(50ms).has_value()) closed = true;
    }
    CHECK(closed);
    const auto lasted = std::chrono::steady_clock::now() - start;
    CHECK(lasted >= 250ms);
    CHECK(lasted < 3s);
}

TEST_CASE("1 MB without a newline is refused with the default limit") {
    served s{"{}", "{}"};
    line_client c{s.port};
    try {
        c.send(std::string(1 << 20, 'x'));
    } catch (const std::exception&) {
        // The server may close its side before all of it is sent; the reply still came.
    }
    CHECK(c.read_line() == "ERR request too large");
    CHECK(s.process.count_log("error") == 0);
    CHECK(serves_again(s.port, 5s));
}

TEST_CASE("after refusing a line, the lingering close lasts seconds, not idle_timeout_ms") {
    served s{"{}", R"({ "max_request_bytes": 1024, "idle_timeout_ms": 20000 })"};
    line_client c{s.port};
    c.send(std::string(20'000, 'x'));
    REQUIRE(c.read_line() == "ERR request too large");
    CHECK(c.read_to_eof(8s) == "");         // the server stopped sending at once...
    const auto closed = c.wait_closed(8s);  // ...and keeps draining input for 2 s only
    REQUIRE(closed.has_value());
    CHECK(*closed >= 1500ms);
    CHECK(*closed < 5s);
}

TEST_CASE("NUL bytes, invalid UTF-8 and a lone CR reach the handler unchanged") {
    served s{"{}", "{}"};
    line_client c{s.port};
    const std::string odd{"a\0b\xff\xfe\rc", 7};
    c.send(odd + "\n");
    CHECK(c.read_line() == "v1:" + odd);
}

TEST_CASE("a handler that never completes is cancelled at request_timeout_ms with ERR timeout") {
    served s{R"({ "hang_on": "stuck" })", R"({ "request_timeout_ms": 300 })"};
    line_client c{s.port};
    const auto start = std::chrono::steady_clock::now();
    c.send("stuck\n");
    CHECK(c.read_line(5s) == "ERR timeout");
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    CHECK(c.read_to_eof() == "");
    CHECK(s.process.wait_for_log("plugin p: request from 127.0.0.1:"));
    CHECK(s.process.wait_for_log("exceeded request_timeout_ms (300): cancelled"));
    CHECK(serves_again(s.port, 5s));
}

TEST_CASE("a client that never reads cannot grow the server's memory past the output cap") {
    // Each 8-byte request asks for a 16 KiB reply: uncapped, one read's worth of
    // pipelined requests would be buffered as tens of megabytes of replies.
    served s{R"({ "pad": 16384 })", R"({ "max_output_bytes": 65536, "write_timeout_ms": 1000 })"};
    {
        line_client warm{s.port};
        warm.send("x\n");
        REQUIRE(warm.read_line().has_value());
    }
    const auto rss_before = rss_kib(s.process.pid());
    line_client c{s.port};
    const int small = 4096;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ::fcntl(c.fd(), F_SETFL, O_NONBLOCK);
    // Pipeline requests and never read a reply, until the server stops reading us too
    // (its send buffer, then ours, fill up).
    const std::string burst = [] {
        std::string b;
        for (int i = 0; i < 4096; ++i) b += "request\n";
        return b;
    }();
    std::size_t sent = 0;
    while (sent < (std::size_t{100} << 20)) {
        const ssize_t n = ::send(c.fd(), burst.data(), burst.size(), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        pollfd p{c.fd(), POLLOUT, 0};
        if (::poll(&p, 1, 500) <= 0) break;  // the server stopped reading: it is capped
    }
    CHECK(sent < (std::size_t{100} << 20));
    const auto rss_during = rss_kib(s.process.pid());
    MESSAGE("sent " << sent / 1024 << " KiB unread; server RSS " << rss_before << " -> "
                    << rss_during << " KiB");
    CHECK(rss_during < rss_before + 4 * 1024);  // uncapped: about 8 MiB more (measured)
    CHECK(s.process.wait_for_log("did not read its replies for write_timeout_ms (1000): closed"));
    line_client after{s.port};
    after.send("y\n");
    CHECK(after.read_line().value_or("").substr(0, 5) == "v1:y.");
}

TEST_CASE("a reset in the middle of a long reply costs only that connection") {
    // 2000 replies of 4 KiB: far more than the socket buffers hold, so the server is
    // still writing when the reset arrives.
    served s{R"({ "pad": 4096 })", "{}"};
    for (int round = 0; round < 5; ++round) {
        line_client c{s.port};
        std::string many;
        for (int i = 0; i < 2000; ++i) many += "reset-me\n";
        c.send(many);
        REQUIRE(c.read_line().value_or("").substr(0, 12) == "v1:reset-me.");
        const linger abort_on_close{1, 0};  // close() now sends RST, unread replies pending
        ::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    }
    CHECK(serves_again(s.port, 5s, "v1:x" + std::string(4096, '.')));
    CHECK(s.process.count_log("error") == 0);
}

TEST_CASE("at max_connections a new client closes the longest-idle connection, not itself") {
    served s{"{}", R"({ "max_connections": 3 })", 1};
    std::vector<line_client> idle;
    for (const char* name : {"oldest", "middle", "newest"}) {
        idle.emplace_back(s.port);
        idle.back().send(std::string{name} + "\n");
        REQUIRE(idle.back().read_line() == "v1:" + std::string{name});
    }
    // "middle" becomes the most recently active: "oldest" has now been idle longest.
    idle[1].send("again\n");
    REQUIRE(idle[1].read_line() == "v1:again");
    line_client late{s.port};
    late.send("late\n");
    CHECK(late.read_line() == "v1:late");
    CHECK(idle[0].read_to_eof() == "");
    for (std::size_t i : {1u, 2u}) {
        idle[i].send("kept\n");
        CHECK(idle[i].read_line() == "v1:kept");
    }
    CHECK(
        s.process.wait_for_log("at max_connections (3 on this thread): closed 1 idle "
                               "connection(s) to admit new ones, refused 0"));
}

TEST_CASE("an idle flood past max_connections does not lock new clients out") {
    served s{"{}", R"({ "max_connections": 50 })", 1};
    std::vector<line_client> flood;
    for (int i = 0; i < 150; ++i) flood.emplace_back(s.port);  // connected, nothing sent
    for (int i = 0; i < 20; ++i) {
        line_client c{s.port};
        c.send("new\n");
        REQUIRE(c.read_line(1s) == "v1:new");
    }
}

TEST_CASE("beyond max_connections with every connection in a request, new ones are refused") {
    served s{R"({ "delay_ms": 3000, "log_requests": true })", R"({ "max_connections": 2 })", 1};
    line_client a{s.port}, b{s.port};
    a.send("a\n");
    b.send("b\n");
    REQUIRE(s.process.wait_for_log("handling ", 10s, 2));
    line_client over{s.port};
    CHECK(over.read_to_eof(2s) == "");
    // Neither request was cut short to make room.
    CHECK(a.read_line() == "v1:a");
    CHECK(b.read_line() == "v1:b");
    CHECK(s.process.wait_for_log("closed 0 idle connection(s) to admit new ones, refused 1"));
}

TEST_CASE("running out of descriptors neither spins nor kills the acceptor") {
    temp_dir tmp;
    // Two threads: both shards run out at once, and it is still said once.
    plugd_process p{
        {"-c", tmp.write("server.json", one_listener_config(test_plugin_dir(), "echo")).string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1"));
    // The limit is lowered from outside, as `ulimit -n` would, hard limit included, so
    // plugd's own raise to the hard limit cannot undo it.
    const rlimit tiny{32, 32};
    REQUIRE(::prlimit(p.pid(), RLIMIT_NOFILE, &tiny, nullptr) == 0);
    std::vector<line_client> flood;
    for (int i = 0; i < 60; ++i) flood.emplace_back(port);
    REQUIRE(p.wait_for_log("cannot accept: Too many open files"));
    const long before = cpu_ticks(p.pid());
    // Measuring CPU use needs wall time to pass; nothing else is waited for here.
    std::this_thread::sleep_for(1s);
    const long used = cpu_ticks(p.pid()) - before;
    MESSAGE("CPU while out of descriptors: " << used << " ticks in 1 s (100 = one core)");
    CHECK(used < 20);
    CHECK(p.count_log("cannot accept: Too many open files") == 1);
    flood.clear();
    CHECK(serves_again(port, 10s));
}
