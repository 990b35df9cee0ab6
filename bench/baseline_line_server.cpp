// baseline_line_server: the yardstick for plugd's throughput: "Hello, <line>" for every line,
// with plugd's threading model but no plugins, limits or timeouts.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <list>
#include <string>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// --delay-ms: each request first waits this long on a timer (the "slow database query" of
// the held-connections scenario; plugd's greeting does the same with its delay_ms).
std::chrono::milliseconds delay{0};

// Reads straight into one buffer and answers every complete line of a read in one write, as
// plugd does, so pipelined requests cost one read and one write per batch in both servers.
asio::awaitable<void> serve(tcp::socket s) {
    boost::system::error_code ignored;
    s.set_option(tcp::no_delay{true}, ignored);
    std::string in(4096, '\0'), out;
    std::size_t end = 0;
    for (;;) {
        auto [ec, n] =
            co_await s.async_read_some(asio::buffer(in.data() + end, in.size() - end), as_tuple);
        if (ec) co_return;
        end += n;
        std::size_t begin = 0;
        while (const void* found = std::memchr(in.data() + begin, '\n', end - begin)) {
            const std::size_t nl = static_cast<const char*>(found) - in.data();
            std::string_view line{in.data() + begin, nl - begin};
            if (line.ends_with('\r')) line.remove_suffix(1);  // plugd accepts "\r\n" too
            if (delay.count() > 0) {
                asio::steady_timer timer{s.get_executor(), delay};
                co_await timer.async_wait(as_tuple);
            }
            out.append("Hello, ").append(line) += '\n';
            begin = nl + 1;
        }
        std::memmove(in.data(), in.data() + begin, end - begin);
        end -= begin;
        if (end == in.size()) in.resize(in.size() * 2);
        if (out.empty()) continue;
        auto [wec, m] = co_await asio::async_write(s, asio::buffer(out), as_tuple);
        if (wec) co_return;
        out.clear();
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor a) {
    for (;;) {
        auto [ec, s] = co_await a.async_accept(as_tuple);
        if (ec == asio::error::operation_aborted) co_return;
        if (!ec) asio::co_spawn(a.get_executor(), serve(std::move(s)), asio::detached);
    }
}

int main(int argc, char** argv) {
    unsigned short port = 0;
    unsigned threads = 1;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (i + 1 < argc && arg == "--port") {
            port = static_cast<unsigned short>(std::stoul(argv[i + 1]));
        } else if (i + 1 < argc && arg == "--threads") {
            threads = std::max(1ul, std::stoul(argv[i + 1]));
        } else if (i + 1 < argc && arg == "--delay-ms") {
            delay = std::chrono::milliseconds{std::stoul(argv[i + 1])};
        } else {
            std::cerr << "usage: plugd_bench_baseline [--port P] [--threads N] [--delay-ms MS]\n";
            return 2;
        }
    }
    // One io_context per thread, each with its own SO_REUSEPORT acceptor on the same port,
    // so the kernel spreads connections across threads exactly as it does for plugd.
    std::list<asio::io_context> shards;  // a list: io_context cannot move
    for (unsigned i = 0; i < threads; ++i) {
        auto& io = shards.emplace_back(1);  // run by one thread only, as in plugd
        tcp::acceptor a{io};
        a.open(tcp::v4());
        a.set_option(asio::socket_base::reuse_address{true});
        const int on = 1;
        ::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
        a.bind({asio::ip::address_v4::loopback(), port});
        a.listen();
        port = a.local_endpoint().port();  // with port 0, every shard joins the first one's
        asio::co_spawn(io, accept_loop(std::move(a)), asio::detached);
    }
    std::cerr << "listening on 127.0.0.1:" << port << std::endl;
    asio::signal_set signals{shards.front(), SIGINT, SIGTERM};
    signals.async_wait([&](auto, int) {
        for (auto& io : shards) io.stop();
    });
    std::list<std::thread> workers;
    for (auto& io : shards) workers.emplace_back([&io] { io.run(); });
    for (auto& t : workers) t.join();
}
