// load: the benchmark's client: connections that send batches of pipelined requests for a
// fixed time, check every reply, and report throughput and batch round-trip latency.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <list>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view message = "world";  // every request's line

constexpr std::string_view usage =
    "usage: plugd_bench_load --port P [--connections C] [--seconds D] [--pipeline N]\n"
    "                        [--threads T] [--expect REPLY | --expect-prefix PREFIX]\n"
    "Each connection sends N pipelined \"world\\n\" requests, waits for N reply lines, and\n"
    "repeats for D seconds; exits 1 if any reply differs from REPLY (default \"Hello, world\")\n"
    "or, with --expect-prefix, does not start with PREFIX and end with \"world\", or if any\n"
    "I/O fails. Latencies (p50_us, p99_us, max_us) are per batch, from its write to its last\n"
    "reply.\n";

struct options {
    unsigned short port = 0;
    unsigned connections = 50;
    double seconds = 3;
    unsigned pipeline = 1;
    unsigned threads = 1;
    std::string expect = "Hello, world";
    // Set while the server's reply changes during the run (a reload benchmark changes the
    // greeting's prefix): any "<PREFIX>...world" passes, so the changing part is not pinned.
    std::optional<std::string> expect_prefix;

    bool accepts(std::string_view reply) const {
        if (!expect_prefix) return reply == expect;
        // The size check stops prefix and message from overlapping ("Hellow" + "world"
        // must not accept "Helloworld").
        return reply.size() >= expect_prefix->size() + message.size() &&
               reply.starts_with(*expect_prefix) && reply.ends_with(message);
    }

    std::string expected() const { return expect_prefix ? *expect_prefix + "...world" : expect; }
};

// One per load thread, touched only by that thread's connections; summed after the join,
// so the hot path shares nothing across threads.
struct tally {
    std::uint64_t requests = 0, errors = 0, mismatches = 0;
    std::vector<std::uint32_t> batch_us;
    std::string first_mismatch;
};

asio::awaitable<void> drive(tcp::socket s, const options& o, clock_type::time_point deadline,
                            tally& t) {
    std::string batch;
    for (unsigned i = 0; i < o.pipeline; ++i) batch.append(message) += '\n';
    std::string in(4096, '\0');
    std::size_t end = 0;
    while (clock_type::now() < deadline) {
        const auto sent = clock_type::now();
        // The whole batch is at most a few kilobytes: it fits the socket buffer, so writing
        // it before reading cannot deadlock against a server that answers as it reads.
        auto [wec, w] = co_await asio::async_write(s, asio::buffer(batch), as_tuple);
        if (wec) {
            ++t.errors;
            co_return;
        }
        for (unsigned replies = 0; replies < o.pipeline;) {
            auto [ec, n] = co_await s.async_read_some(
                asio::buffer(in.data() + end, in.size() - end), as_tuple);
            if (ec) {  // the server closed or reset mid-batch: a reply is missing
                ++t.errors;
                co_return;
            }
            end += n;
            std::size_t begin = 0;
            while (replies < o.pipeline) {
                const void* found = std::memchr(in.data() + begin, '\n', end - begin);
                if (!found) break;
                const std::size_t nl = static_cast<const char*>(found) - in.data();
                const std::string_view line{in.data() + begin, nl - begin};
                if (!o.accepts(line) && t.mismatches++ == 0) t.first_mismatch = line;
                ++replies;
                begin = nl + 1;
            }
            std::memmove(in.data(), in.data() + begin, end - begin);
            end -= begin;
            if (end == in.size()) {
                if (in.size() >= (1u << 20)) {  // a megabyte without '\n' is no reply
                    ++t.errors;
                    co_return;
                }
                in.resize(in.size() * 2);
            }
        }
        t.requests += o.pipeline;
        t.batch_us.push_back(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - sent)
                .count()));
    }
    if (end != 0 && t.mismatches++ == 0) t.first_mismatch = "(a reply nobody asked for)";
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
}

options parse(int argc, char** argv) {
    options o;
    bool expect_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) throw std::invalid_argument(std::string{arg} + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--port")
            o.port = static_cast<unsigned short>(std::stoul(value));
        else if (arg == "--connections")
            o.connections = std::stoul(value);
        else if (arg == "--seconds")
            o.seconds = std::stod(value);
        else if (arg == "--pipeline")
            o.pipeline = std::stoul(value);
        else if (arg == "--threads")
            o.threads = std::stoul(value);
        else if (arg == "--expect") {
            o.expect = value;
            expect_given = true;
        } else if (arg == "--expect-prefix")
            o.expect_prefix = value;
        else
            throw std::invalid_argument("unknown argument " + std::string{arg});
    }
    if (expect_given && o.expect_prefix) {
        throw std::invalid_argument("--expect and --expect-prefix exclude each other");
    }
    if (o.port == 0 || o.connections == 0 || o.pipeline == 0 || o.threads == 0 ||
        !(o.seconds > 0)) {
        throw std::invalid_argument(
            "--port, --connections, --pipeline, --threads and "
            "--seconds must be more than 0");
    }
    return o;
}

std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    auto at = v.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), at, v.end());
    return *at;
}

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "plugd_bench_load: " << e.what() << "\n" << usage;
        return 2;
    }
    std::list<asio::io_context> ios;  // a list: io_context cannot move
    std::vector<tally> tallies(o.threads);
    for (unsigned i = 0; i < o.threads; ++i) ios.emplace_back(1);

    // Connect everything before the clock starts, so connection set-up is not measured.
    std::vector<std::pair<tcp::socket, tally*>> sockets;
    const tcp::endpoint server{asio::ip::address_v4::loopback(), o.port};
    auto io = ios.begin();
    for (unsigned c = 0; c < o.connections; ++c, ++io) {
        if (io == ios.end()) io = ios.begin();
        tcp::socket s{*io};
        boost::system::error_code ec;
        s.connect(server, ec);
        if (!ec) s.set_option(tcp::no_delay{true}, ec);
        if (ec) {
            std::cerr << "plugd_bench_load: connection " << c << " to 127.0.0.1:" << o.port << ": "
                      << ec.message() << "\n";
            return 1;
        }
        sockets.emplace_back(std::move(s), &tallies[c % o.threads]);
    }

    const auto start = clock_type::now();
    const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(
                                      std::chrono::duration<double>{o.seconds});
    for (auto& [s, t] : sockets) {
        auto exec = s.get_executor();
        asio::co_spawn(exec, drive(std::move(s), o, deadline, *t),
                       [t = t](std::exception_ptr e) { t->errors += e ? 1 : 0; });
    }
    std::vector<std::thread> workers;
    for (auto& i : ios) workers.emplace_back([&i] { i.run(); });
    for (auto& w : workers) w.join();
    const std::chrono::duration<double> elapsed = clock_type::now() - start;

    tally all;
    for (auto& t : tallies) {
        all.requests += t.requests;
        all.errors += t.errors;
        all.mismatches += t.mismatches;
        all.batch_us.insert(all.batch_us.end(), t.batch_us.begin(), t.batch_us.end());
        if (all.first_mismatch.empty()) all.first_mismatch = t.first_mismatch;
    }
    // The worst batch is where a stall (a reload, a descheduled server) shows; p99 hides a
    // stall that hits fewer than 1% of the batches.
    const std::uint32_t max_us =
        all.batch_us.empty() ? 0 : *std::max_element(all.batch_us.begin(), all.batch_us.end());
    std::cout << "requests/s=" << static_cast<std::uint64_t>(all.requests / elapsed.count())
              << " requests=" << all.requests << " errors=" << all.errors
              << " mismatches=" << all.mismatches << " p50_us=" << percentile(all.batch_us, 0.50)
              << " p99_us=" << percentile(all.batch_us, 0.99) << " max_us=" << max_us << std::endl;
    if (all.mismatches > 0) {
        std::cerr << "plugd_bench_load: expected \"" << o.expected() << "\", got e.g. \""
                  << all.first_mismatch << "\"\n";
    }
    return all.errors == 0 && all.mismatches == 0 ? 0 : 1;
}
