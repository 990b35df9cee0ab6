// plugd-bench: a load generator for plugd deployments (and any line, one-shot or HTTP
// server), in the spirit of redis-benchmark and wrk. Every reply is checked byte for byte.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <list>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "latency_histogram.hpp"
#include "process_sample.hpp"
#include "warm_up.hpp"
#include "websocket_load.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using plugd::bench::latency_histogram;
using plugd::bench::process_sample;
using plugd::bench::sample_process;
using plugd::bench::settled_sample;
using plugd::bench::warm_up_exchange;

namespace {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::string_view usage = R"(usage: plugd-bench --port P [options]

  --host H             server address (default 127.0.0.1)
  --port P             server port (required)
  --mode M             line (a request per line, keep-alive), oneshot (one request per
                       connection, the reply is everything until the server closes) or
                       http (HTTP/1.1 GET /<message>, keep-alive); default line
  --connections N      concurrent connections (default 50)
  --pipeline N         requests sent at once per connection before reading the replies
                       (line and http; default 1)
  --duration S         measured seconds (default 5)
  --warmup S           seconds of load before measuring (default 1)
  --threads N          client threads (default 1)
  --message TEXT       each request's message (default "world")
  --size N             a message of N bytes instead ('x' repeated)
  --expect TEXT        the exact reply (default "Hello, <message>"; for http, the body)
  --expect-prefix T    accept any reply that starts with T and ends with the message
                       (for a run during which the reply changes, such as a reload)
  --churn              close and reconnect after every batch (connection set-up measured)
  --reopen-closed      a connection the server closed between two batches (the next
                       batch's write fails, or the connection ends before any byte of its
                       replies) is opened again and the batch sent again, as HTTP clients
                       retry idempotent requests: counted as reopened=N, not as errors, its
                       latency from the first send. A close amid the replies stays an error
  --held N             also hold N connections busy with --held-message requests, one at a
                       time each (slow requests the measured load shares the server with)
  --held-message TEXT  the held connections' request (default "hold")
  --idle N             also open N connections that send nothing, kept open to the end
                       (what idle keep-alive clients cost the server)
  --server-pid PID     the server runs on this machine as PID: also report its CPU time
                       per request (user+system, from /proc) and its resident memory per
                       connection (growth from before connecting to the end of the run,
                       divided by every connection opened: measured, held and idle). The
                       first sample comes after one warm-up request of each kind sent (the
                       measured message, the held one), each on a connection of its own,
                       once the server is quiet: what it spends once is not counted per
                       connection
  --timeout S          a batch without its replies after S seconds is an error (default 10)
  --json               print the result as one JSON object instead of key=value text

  --websocket PATH     room fan-out instead of requests: --connections subscribers and one
                       publisher upgrade to WebSocket sessions on PATH (e.g. /room/bench) of
                       a chat server, which must deliver every message a client sends to
                       the room's other clients. The publisher sends text messages "<seq>
                       <send time> " padded with 'x' to --size bytes (default 32), keeping at
                       most --in-flight of them not yet read by every subscriber: it goes as
                       fast as delivery does. Reports delivered messages/s (all subscribers),
                       each delivery's latency, and with --server-pid the server's CPU per
                       delivered message and its resident memory per idle session (the
                       growth from after one warm-up session, upgraded and closed, until
                       every subscriber was upgraded and the server quiet, before the first
                       message). Every message is checked: order, bytes.
                       --timeout S: no subscriber upgraded, or no message reaching every
                       subscriber, for S seconds fails the run. --threads spreads the
                       subscribers (the publisher is on the first thread).
  --in-flight K        (--websocket) messages sent and not yet read by every subscriber, at
                       most (default 1: the next message once the last reached everyone)

--connections may be 0 when --held or --idle opens connections. Latency is per batch:
from writing it to its last reply. Exits 0 when every reply
matched, 1 when any failed or differed, 2 on bad usage.
)";

enum class mode_kind { line, oneshot, http };

struct options {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    mode_kind mode = mode_kind::line;
    unsigned connections = 50;
    unsigned pipeline = 1;
    double duration = 5;
    double warmup = 1;
    unsigned threads = 1;
    std::string message = "world";
    std::optional<std::string> expect;
    std::optional<std::string> expect_prefix;
    bool churn = false;
    bool reopen_closed = false;
    unsigned held = 0;
    std::string held_message = "hold";
    unsigned idle = 0;
    int server_pid = 0;
    double timeout = 10;
    bool json = false;
    std::optional<std::string> websocket;  // the room's path: --websocket mode
    std::optional<unsigned> in_flight;
    std::optional<std::size_t> size;

    std::string expected() const { return expect ? *expect : "Hello, " + message; }
    bool accepts(std::string_view reply) const {
        if (!expect_prefix) return reply == expected();
        return reply.size() >= expect_prefix->size() + message.size() &&
               reply.starts_with(*expect_prefix) && reply.ends_with(message);
    }
};

// What one thread counted; merged after the run, so the load shares nothing across threads.
struct tally {
    // Mismatches are counted among `requests` (the measured window), so never more than it;
    // one during the warm-up still fails the run (`mismatched`).
    std::uint64_t requests = 0, errors = 0, mismatches = 0, held_requests = 0, reopened = 0;
    bool mismatched = false;
    latency_histogram latency;
    std::string first_error;
    std::string first_mismatch;
    void error(std::string what) {
        if (errors++ == 0) first_error = std::move(what);
    }
};

std::string percent_encoded(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", c);
            out += hex;
        }
    }
    return out;
}

// The bytes of one request.
std::string request_bytes(const options& o, std::string_view message) {
    switch (o.mode) {
        case mode_kind::http:
            return "GET /" + percent_encoded(message) + " HTTP/1.1\r\nHost: " + o.host + "\r\n\r\n";
        case mode_kind::line:
        case mode_kind::oneshot:
            break;
    }
    return std::string{message} + "\n";
}

// One complete reply at the start of `in`: its size and its payload (the line, or the
// HTTP body), nullopt while incomplete. Throws std::runtime_error for a malformed reply.
std::optional<std::pair<std::size_t, std::string_view>> next_reply(const options& o,
                                                                   std::string_view in) {
    if (o.mode == mode_kind::line) {
        const auto nl = in.find('\n');
        if (nl == std::string_view::npos) return std::nullopt;
        auto line = in.substr(0, nl);
        if (line.ends_with('\r')) line.remove_suffix(1);
        return std::pair{nl + 1, line};
    }
    // HTTP/1.1 with Content-Length (what a request without a body gets from plugd, nginx
    // and Node); a chunked reply is refused rather than misread.
    const auto end = in.find("\r\n\r\n");
    if (end == std::string_view::npos) return std::nullopt;
    const auto head = in.substr(0, end);
    if (!head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200")) {
        throw std::runtime_error("HTTP status is not 200: " +
                                 std::string{head.substr(0, head.find('\r'))});
    }
    std::size_t length = 0;
    bool found = false;
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;) {
        const auto next = head.find("\r\n", at + 2);
        const auto field =
            head.substr(at + 2, next == std::string_view::npos ? head.npos : next - at - 2);
        const auto colon = field.find(':');
        std::string name{field.substr(0, colon)};
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "content-length") {
            length = std::stoul(std::string{field.substr(colon + 1)});
            found = true;
        }
        at = next;
    }
    if (!found) throw std::runtime_error("HTTP reply without Content-Length");
    if (in.size() < end + 4 + length) return std::nullopt;
    return std::pair{end + 4 + length, in.substr(end + 4, length)};
}

// A timer that closes the socket when a batch takes longer than --timeout. An expiry that
// arrives after its batch ended (the handler was already queued) is recognised and ignored.
struct batch_deadline {
    asio::steady_timer timer;
    std::uint64_t armed = 0;
    bool expired = false;
    void arm(tcp::socket& s, double seconds) {
        expired = false;
        timer.expires_after(std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>{seconds}));
        timer.async_wait([this, &s, batch = ++armed](const boost::system::error_code& ec) {
            if (ec || batch != armed) return;
            expired = true;
            boost::system::error_code ignored;
            s.close(ignored);
        });
    }
    void disarm() {
        ++armed;
        timer.cancel();
    }
};

// One connection's life: batches until `stop`; records those that start after `measure`.
asio::awaitable<void> drive(const options& o, tcp::resolver::results_type endpoints,
                            clock_type::time_point measure, clock_type::time_point stop, tally& t,
                            bool held) {
    const auto ex = co_await asio::this_coro::executor;
    const std::string message = held ? o.held_message : o.message;
    const unsigned pipeline = held || o.mode == mode_kind::oneshot ? 1 : o.pipeline;
    std::string batch;
    for (unsigned i = 0; i < pipeline; ++i) batch += request_bytes(o, message);
    std::string in;
    tcp::socket s{ex};
    batch_deadline deadline{asio::steady_timer{ex}};
    const bool reconnect = o.churn || o.mode == mode_kind::oneshot;
    auto sent = clock_type::now();
    bool resending = false;  // the server closed before the batch's replies: sent again
    while (clock_type::now() < stop) {
        if (!std::exchange(resending, false)) sent = clock_type::now();
        std::uint64_t wrong = 0;  // replies of this batch that were not the expected one
        const auto mismatch = [&](std::string_view reply) {
            if (!t.mismatched) t.first_mismatch = reply;
            t.mismatched = true;
            ++wrong;
        };
        deadline.arm(s, o.timeout);
        const auto failed = [&](const std::string& what) {
            deadline.disarm();
            t.error(deadline.expired ? "a batch got no complete reply within --timeout" : what);
        };
        if (!s.is_open()) {
            auto [cec, at] = co_await asio::async_connect(s, endpoints, as_tuple);
            if (cec) {
                failed("connect: " + cec.message());
                co_return;
            }
            boost::system::error_code ignored;
            s.set_option(tcp::no_delay{true}, ignored);
        }
        // A batch is at most a few kilobytes: it fits the socket buffer, so writing it
        // whole before reading cannot deadlock against a server that answers as it reads.
        // A keep-alive connection the server closed is found here or at the first read.
        const auto closed_before_replies = [&](const boost::system::error_code& ec) {
            if (!o.reopen_closed || !in.empty() || reconnect || held) return false;
            if (ec != asio::error::eof && ec != asio::error::connection_reset &&
                ec != asio::error::broken_pipe)
                return false;
            deadline.disarm();
            boost::system::error_code ignored;
            s.close(ignored);
            ++t.reopened;
            resending = true;
            return true;
        };
        auto [wec, w] = co_await asio::async_write(s, asio::buffer(batch), as_tuple);
        if (wec) {
            if (closed_before_replies(wec)) continue;
            failed("write: " + wec.message());
            co_return;
        }
        unsigned replies = 0;
        char chunk[16384];
        while (replies < pipeline) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), as_tuple);
            in.append(chunk, n);
            if (o.mode == mode_kind::oneshot) {
                if (ec == asio::error::eof) {
                    // Everything until the close is the reply (its newline included).
                    std::string_view reply = in;
                    if (reply.ends_with('\n')) reply.remove_suffix(1);
                    if (!o.accepts(reply)) mismatch(reply);
                    in.clear();
                    ++replies;
                    break;
                }
                if (ec) break;
                continue;
            }
            if (ec && replies == 0 && closed_before_replies(ec)) break;
            if (ec) break;
            try {
                std::size_t used = 0;
                while (replies < pipeline) {
                    const auto r = next_reply(o, std::string_view{in}.substr(used));
                    if (!r) break;
                    if (!held && !o.accepts(r->second)) mismatch(r->second);
                    used += r->first;
                    ++replies;
                }
                in.erase(0, used);
            } catch (const std::exception& e) {
                failed(e.what());
                co_return;
            }
            if (in.size() > (std::size_t{1} << 24)) {
                failed("16 MiB without a complete reply");
                co_return;
            }
        }
        if (resending) continue;
        deadline.disarm();
        if (replies < pipeline) {
            failed("the server closed or reset the connection with replies missing");
            co_return;
        }
        if (held) {
            ++t.held_requests;
        } else if (sent >= measure) {
            t.requests += pipeline;
            t.mismatches += wrong;
            t.latency.record(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - sent)
                    .count()));
        }
        if (reconnect) {
            boost::system::error_code ignored;
            s.close(ignored);
            in.clear();
        }
    }
    if (!in.empty() && !t.mismatched) {
        t.mismatched = true;
        t.first_mismatch = "(a reply nobody asked for)";
    }
}

// A connection that sends nothing, open until `release` is cancelled or expires: an idle
// keep-alive client, for what the server spends on one.
asio::awaitable<void> hold_idle(tcp::resolver::results_type endpoints, asio::steady_timer& release,
                                tally& t) {
    tcp::socket s{co_await asio::this_coro::executor};
    auto [ec, at] = co_await asio::async_connect(s, endpoints, as_tuple);
    if (ec) {
        t.error("connect: " + ec.message());
        co_return;
    }
    co_await release.async_wait(as_tuple);
}

// Takes the server's samples at the start and the end of the measured time, then lets the
// idle connections go (so they count in the last sample).
asio::awaitable<void> sample_server(const options& o, clock_type::time_point measure,
                                    clock_type::time_point stop, asio::steady_timer& release,
                                    std::optional<process_sample>& at_measure,
                                    std::optional<process_sample>& at_stop) {
    asio::steady_timer timer{co_await asio::this_coro::executor, measure};
    co_await timer.async_wait(as_tuple);
    if (o.server_pid) at_measure = sample_process(o.server_pid);
    timer.expires_at(stop);
    co_await timer.async_wait(as_tuple);
    if (o.server_pid) at_stop = sample_process(o.server_pid);
    release.cancel();
}

// Many connections need many descriptors: take what the hard limit allows.
void raise_descriptor_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--churn") {
            o.churn = true;
            continue;
        }
        if (arg == "--reopen-closed") {
            o.reopen_closed = true;
            continue;
        }
        if (arg == "--json") {
            o.json = true;
            continue;
        }
        if (arg == "--help") throw std::invalid_argument("");
        static constexpr std::string_view with_value[] = {
            "--host",       "--port",          "--mode",      "--connections",  "--pipeline",
            "--duration",   "--warmup",        "--threads",   "--message",      "--size",
            "--expect",     "--expect-prefix", "--held",      "--held-message", "--idle",
            "--server-pid", "--websocket",     "--in-flight", "--timeout"};
        if (std::find(std::begin(with_value), std::end(with_value), arg) == std::end(with_value)) {
            throw std::invalid_argument("unknown argument \"" + std::string{arg} + "\"");
        }
        if (i + 1 >= argc) throw std::invalid_argument(std::string{arg} + " needs a value");
        const std::string value = argv[++i];
        const auto number = [&] {
            std::size_t used = 0;
            const unsigned long n = std::stoul(value, &used);
            if (used != value.size())
                throw std::invalid_argument(std::string{arg} + ": not a number");
            return static_cast<unsigned>(n);
        };
        const auto seconds = [&] {
            std::size_t used = 0;
            const double d = std::stod(value, &used);
            if (used != value.size() || d < 0)
                throw std::invalid_argument(std::string{arg} + ": not a duration in seconds");
            return d;
        };
        if (arg == "--host")
            o.host = value;
        else if (arg == "--port")
            o.port = static_cast<unsigned short>(number());
        else if (arg == "--mode") {
            if (value == "line")
                o.mode = mode_kind::line;
            else if (value == "oneshot")
                o.mode = mode_kind::oneshot;
            else if (value == "http")
                o.mode = mode_kind::http;
            else
                throw std::invalid_argument("--mode takes line, oneshot or http, not \"" + value +
                                            "\"");
        } else if (arg == "--connections")
            o.connections = number();
        else if (arg == "--pipeline")
            o.pipeline = number();
        else if (arg == "--duration")
            o.duration = seconds();
        else if (arg == "--warmup")
            o.warmup = seconds();
        else if (arg == "--threads")
            o.threads = number();
        else if (arg == "--message")
            o.message = value;
        else if (arg == "--size") {
            o.size = number();
            o.message = std::string(*o.size, 'x');
        } else if (arg == "--expect")
            o.expect = value;
        else if (arg == "--expect-prefix")
            o.expect_prefix = value;
        else if (arg == "--held")
            o.held = number();
        else if (arg == "--held-message")
            o.held_message = value;
        else if (arg == "--idle")
            o.idle = number();
        else if (arg == "--server-pid")
            o.server_pid = static_cast<int>(number());
        else if (arg == "--websocket")
            o.websocket = value;
        else if (arg == "--in-flight")
            o.in_flight = number();
        else
            o.timeout = seconds();  // --timeout, the last of with_value
    }
    if (o.port == 0) throw std::invalid_argument("--port is required");
    if (o.websocket) {
        if (!o.websocket->starts_with('/'))
            throw std::invalid_argument("--websocket takes a path starting with '/'");
        if (o.connections == 0 || o.in_flight == 0u || o.threads == 0 || !(o.duration > 0))
            throw std::invalid_argument(
                "--connections, --in-flight, --threads and --duration must be above 0");
        if (o.threads > o.connections)
            throw std::invalid_argument("--threads cannot exceed --connections (subscribers)");
        for (int i = 1; i < argc; ++i) {
            const std::string_view arg = argv[i];
            for (std::string_view other :
                 {"--mode", "--pipeline", "--message", "--expect", "--expect-prefix", "--churn",
                  "--reopen-closed", "--held", "--held-message", "--idle"}) {
                if (arg == other)
                    throw std::invalid_argument(std::string{arg} +
                                                " does not apply to --websocket");
            }
        }
        return o;
    }
    if (o.in_flight) throw std::invalid_argument("--in-flight applies to --websocket only");
    if (o.pipeline == 0 || o.threads == 0 || !(o.duration > 0)) {
        throw std::invalid_argument("--pipeline, --threads and --duration must be above 0");
    }
    if (o.connections + o.held + o.idle == 0) {
        throw std::invalid_argument("--connections, --held or --idle must open a connection");
    }
    if (o.expect && o.expect_prefix) {
        throw std::invalid_argument("--expect and --expect-prefix exclude each other");
    }
    if (o.mode == mode_kind::line && (o.message.find('\n') != std::string::npos)) {
        throw std::invalid_argument("a line-mode message cannot hold a newline");
    }
    return o;
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\u%04x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// --websocket: the room fan-out load (websocket_load.cpp) and its result line.
int run_websocket(const options& o) {
    raise_descriptor_limit();
    plugd::bench::websocket_options w;
    w.host = o.host;
    w.port = o.port;
    w.path = *o.websocket;
    w.subscribers = o.connections;
    w.in_flight = o.in_flight.value_or(w.in_flight);
    w.size = o.size.value_or(w.size);
    w.threads = o.threads;
    w.duration = o.duration;
    w.warmup = o.warmup;
    w.timeout = o.timeout;
    w.server_pid = o.server_pid;
    const auto r = plugd::bench::run_websocket_load(w);
    const auto rate =
        static_cast<std::uint64_t>(static_cast<double>(r.delivered) / std::max(r.seconds, 1e-9));
    const auto& h = r.latency;
    if (o.json) {
        std::cout << "{\"messages_per_second\": " << rate << ", \"delivered\": " << r.delivered
                  << ", \"sent\": " << r.sent << ", \"subscribers\": " << w.subscribers
                  << ", \"in_flight\": " << w.in_flight << ", \"errors\": " << r.errors
                  << ", \"mismatches\": " << r.mismatches
                  << ", \"latency_us\": {\"p50\": " << h.percentile(0.5)
                  << ", \"p99\": " << h.percentile(0.99) << ", \"p99.9\": " << h.percentile(0.999)
                  << ", \"max\": " << h.max() << "}, \"seconds\": " << r.seconds
                  << ", \"setup_seconds\": " << r.setup_seconds;
        if (r.server_cpu_us_per_message)
            std::cout << ", \"server_cpu_us_per_message\": " << *r.server_cpu_us_per_message;
        if (r.server_rss_kib) std::cout << ", \"server_rss_kib\": " << *r.server_rss_kib;
        if (r.server_rss_per_session_bytes)
            std::cout << ", \"server_rss_per_session_bytes\": " << *r.server_rss_per_session_bytes;
        std::cout << ", \"first_error\": " << json_string(r.first_error)
                  << ", \"first_mismatch\": " << json_string(r.first_mismatch) << "}\n";
    } else {
        std::cout << "messages/s=" << rate << " delivered=" << r.delivered << " sent=" << r.sent
                  << " subscribers=" << w.subscribers << " errors=" << r.errors
                  << " mismatches=" << r.mismatches << " p50_us=" << h.percentile(0.5)
                  << " p99_us=" << h.percentile(0.99) << " p999_us=" << h.percentile(0.999)
                  << " max_us=" << h.max() << " setup_s=" << r.setup_seconds;
        if (r.server_cpu_us_per_message)
            std::cout << " server_cpu_us_per_message=" << *r.server_cpu_us_per_message;
        if (r.server_rss_kib) std::cout << " server_rss_kib=" << *r.server_rss_kib;
        if (r.server_rss_per_session_bytes)
            std::cout << " server_rss_per_session_bytes=" << *r.server_rss_per_session_bytes;
        std::cout << std::endl;
    }
    if (r.errors > 0)
        std::cerr << "plugd-bench: " << r.errors << " error(s), first: " << r.first_error << "\n";
    if (r.mismatches > 0)
        std::cerr << "plugd-bench: " << r.mismatches
                  << " message(s) out of order or altered, e.g. \"" << r.first_mismatch << "\"\n";
    return r.errors == 0 && r.mismatches == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        if (*e.what()) std::cerr << "plugd-bench: " << e.what() << "\n\n";
        std::cerr << usage;
        return 2;
    }
    if (o.websocket) return run_websocket(o);
    std::list<asio::io_context> ios;  // a list: an io_context cannot move
    for (unsigned i = 0; i < o.threads; ++i) ios.emplace_back(1);
    tcp::resolver::results_type endpoints;
    try {
        tcp::resolver resolver{ios.front()};
        endpoints = resolver.resolve(o.host, std::to_string(o.port));
    } catch (const std::exception& e) {
        std::cerr << "plugd-bench: cannot resolve " << o.host << ": " << e.what() << "\n";
        return 1;
    }
    raise_descriptor_limit();
    std::optional<process_sample> before, at_measure, at_stop;
    if (o.server_pid) {
        // A request of each kind the run sends first, each on a connection of its own (see
        // warm_up.hpp); a held one takes as long as the server holds it.
        std::vector<std::string> warm;
        if (o.connections + o.idle > 0) warm.push_back(o.message);
        if (o.held > 0) warm.push_back(o.held_message);
        for (const auto& message : warm) {
            const std::string error = warm_up_exchange(
                endpoints, request_bytes(o, message),
                [&o](std::string_view in) { return next_reply(o, in).has_value(); },
                o.mode == mode_kind::oneshot, o.timeout);
            if (!error.empty()) {
                std::cerr << "plugd-bench: the warm-up request \"" << message << "\": " << error
                          << "\n";
                return 1;
            }
        }
        before = settled_sample(o.server_pid);
    }
    if (o.server_pid && !before) {
        std::cerr << "plugd-bench: cannot read /proc/" << o.server_pid
                  << "/stat and /status: is the server running on this machine as that pid?\n";
        return 1;
    }
    std::vector<tally> tallies(o.threads);
    const auto to_duration = [](double s) {
        return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>{s});
    };
    const auto start = clock_type::now();
    const auto measure = start + to_duration(o.warmup);
    const auto stop = measure + to_duration(o.duration);
    auto io = ios.begin();
    for (unsigned c = 0; c < o.connections + o.held; ++c) {
        auto& t = tallies[c % o.threads];
        asio::co_spawn(*io, drive(o, endpoints, measure, stop, t, c >= o.connections),
                       [&t](std::exception_ptr e) {
                           if (e) t.error("an unexpected exception in the client");
                       });
        if (++io == ios.end()) io = ios.begin();
    }
    // Idle connections and the sampler share the first thread: the sampler releases them.
    asio::steady_timer release{ios.front(), clock_type::time_point::max()};
    for (unsigned c = 0; c < o.idle; ++c) {
        asio::co_spawn(ios.front(), hold_idle(endpoints, release, tallies.front()),
                       [&t = tallies.front()](std::exception_ptr e) {
                           if (e) t.error("an unexpected exception in the client");
                       });
    }
    asio::co_spawn(ios.front(), sample_server(o, measure, stop, release, at_measure, at_stop),
                   asio::detached);
    std::vector<std::thread> workers;
    for (auto& i : ios) workers.emplace_back([&i] { i.run(); });
    for (auto& w : workers) w.join();
    // Batches counted are those started in the measured window: divide by the window, not by
    // the time until the last of them ended (a 1 s request would stretch it by a second).
    const std::chrono::duration<double> measured = std::min(clock_type::now(), stop) - measure;

    tally all;
    for (auto& t : tallies) {
        all.requests += t.requests;
        all.errors += t.errors;
        all.mismatches += t.mismatches;
        all.mismatched = all.mismatched || t.mismatched;
        all.held_requests += t.held_requests;
        all.reopened += t.reopened;
        all.latency.merge(t.latency);
        if (all.first_error.empty()) all.first_error = t.first_error;
        if (all.first_mismatch.empty()) all.first_mismatch = t.first_mismatch;
    }
    const auto rate = static_cast<std::uint64_t>(static_cast<double>(all.requests) /
                                                 std::max(measured.count(), 1e-9));
    const auto& h = all.latency;
    // The server's figures, when --server-pid was given and /proc answered at every sample.
    std::optional<double> cpu_us_per_request;
    std::optional<std::uint64_t> rss_kib, rss_per_connection;
    if (at_measure && at_stop) {
        if (all.requests > 0) {
            cpu_us_per_request = (at_stop->cpu_seconds - at_measure->cpu_seconds) * 1e6 /
                                 static_cast<double>(all.requests);
        }
        rss_kib = at_stop->rss_kib;
        const std::uint64_t opened = std::uint64_t{o.connections} + o.held + o.idle;
        rss_per_connection = at_stop->rss_kib > before->rss_kib
                                 ? (at_stop->rss_kib - before->rss_kib) * 1024 / opened
                                 : 0;
    } else if (o.server_pid) {
        std::cerr << "plugd-bench: the server (pid " << o.server_pid
                  << ") was gone before the run ended: no server figures\n";
        all.error("the server exited during the run");
    }
    if (o.json) {
        std::cout << "{\"requests_per_second\": " << rate << ", \"requests\": " << all.requests
                  << ", \"errors\": " << all.errors << ", \"mismatches\": " << all.mismatches
                  << ", \"held_requests\": " << all.held_requests
                  << ", \"reopened\": " << all.reopened
                  << ", \"latency_us\": {\"p50\": " << h.percentile(0.5)
                  << ", \"p99\": " << h.percentile(0.99) << ", \"p99.9\": " << h.percentile(0.999)
                  << ", \"max\": " << h.max() << "}, \"connections\": " << o.connections
                  << ", \"pipeline\": " << o.pipeline << ", \"held\": " << o.held
                  << ", \"idle\": " << o.idle << ", \"seconds\": " << measured.count();
        if (cpu_us_per_request)
            std::cout << ", \"server_cpu_us_per_request\": " << *cpu_us_per_request;
        if (rss_kib) {
            std::cout << ", \"server_rss_kib\": " << *rss_kib
                      << ", \"server_rss_per_connection_bytes\": " << *rss_per_connection;
        }
        std::cout << ", \"first_error\": " << json_string(all.first_error)
                  << ", \"first_mismatch\": " << json_string(all.first_mismatch) << "}\n";
    } else {
        // One line of key=value: what bench/*.sh parse.
        std::cout << "requests/s=" << rate << " requests=" << all.requests
                  << " errors=" << all.errors << " mismatches=" << all.mismatches
                  << " p50_us=" << h.percentile(0.5) << " p99_us=" << h.percentile(0.99)
                  << " p999_us=" << h.percentile(0.999) << " max_us=" << h.max();
        if (o.held) std::cout << " held_requests=" << all.held_requests;
        if (o.reopen_closed) std::cout << " reopened=" << all.reopened;
        if (cpu_us_per_request) std::cout << " server_cpu_us_per_request=" << *cpu_us_per_request;
        if (rss_kib) {
            std::cout << " server_rss_kib=" << *rss_kib
                      << " server_rss_per_connection_bytes=" << *rss_per_connection;
        }
        std::cout << std::endl;
    }
    if (all.errors > 0)
        std::cerr << "plugd-bench: " << all.errors << " error(s), first: " << all.first_error
                  << "\n";
    if (all.mismatched) {
        std::cerr << "plugd-bench: expected \""
                  << (o.expect_prefix ? *o.expect_prefix + "..." + o.message : o.expected())
                  << "\", got e.g. \"" << all.first_mismatch << "\"\n";
    }
    return all.errors == 0 && !all.mismatched ? 0 : 1;
}
