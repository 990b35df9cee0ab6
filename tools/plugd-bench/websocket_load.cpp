// websocket_load: plugd-bench's --websocket mode (see websocket_load.hpp).
//
// Pacing: the publisher keeps at most `in_flight` messages that some subscriber has not read
// yet, and sends the next one as soon as the oldest has reached every subscriber. So it runs
// as fast as the server delivers, never faster: no queue grows in the server or in the
// socket buffers, and the latency measured is delivery's, not a backlog's. With one in
// flight each message is a full fan-out on its own; a few let the server overlap them.
//
// The client side is RFC 6455 by hand over Asio, lean because one process holds 10,000
// subscribers on a machine it shares with the server: a subscriber is a socket and a
// coroutine reading into a small buffer of its own, one read system call per delivery
// (Asio's reactor reads a socket it knows to be readable, and after a short read waits for
// the next edge without asking again; a wait for readability instead re-arms epoll each
// time). It speaks only what the load needs: masked text frames from the publisher;
// unmasked frames, pings (answered), close and fragments from the server; no extensions.
#include "websocket_load.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <limits>
#include <list>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "process_sample.hpp"
#include "warm_up.hpp"

namespace plugd::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// Every session offers RFC 6455's sample key (section 1.3), whose accept value is known: the
// key only proves that the server speaks WebSocket, and a fixed one lets the reply be checked
// without a SHA-1 here. Servers do not (and cannot) tell.
constexpr std::string_view sample_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view sample_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// Upgrades under way at once, over every thread: more only overflow the server's accept queue
// and cost SYN retransmissions (a second each), fewer make the set-up of 10,000 slow.
constexpr unsigned max_handshakes = 256;

// A server frame larger than this is refused rather than buffered.
constexpr std::uint64_t max_frame = std::uint64_t{1} << 24;

// Each session's read buffer: a few messages of the default size, so that a read usually
// takes everything there is (the next waits for new bytes), in 10,000 coroutine frames.
constexpr std::size_t read_size = 512;

enum opcode : unsigned char {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close_frame = 0x8,
    ping = 0x9,
    pong = 0xa
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
}

// A client frame, masked as RFC 6455 5.3 requires of everything a client sends.
void append_client_frame(std::string& out, unsigned char op, std::string_view payload,
                         std::uint32_t mask) {
    out += static_cast<char>(0x80 | op);
    const std::uint64_t n = payload.size();
    if (n <= 125) {
        out += static_cast<char>(0x80 | n);
    } else if (n <= 0xffff) {
        out += static_cast<char>(0x80 | 126);
        out += static_cast<char>(n >> 8);
        out += static_cast<char>(n & 0xff);
    } else {
        out += static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
    }
    const char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16),
                         static_cast<char>(mask >> 8), static_cast<char>(mask)};
    out.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out += static_cast<char>(payload[i] ^ key[i % 4]);
}

struct server_frame {
    unsigned char opcode = 0;
    bool fin = false;
    std::string_view payload;
};

// The frame at the start of `in`: its size in bytes, 0 while incomplete. Throws
// std::runtime_error for what a server must not send (RFC 6455 5.1, 5.2).
std::size_t next_server_frame(std::string_view in, server_frame& f) {
    if (in.size() < 2) return 0;
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
    if (byte(0) & 0x70) throw std::runtime_error("a frame with RSV bits set (no extension agreed)");
    if (byte(1) & 0x80) throw std::runtime_error("a masked frame from the server");
    std::uint64_t n = byte(1) & 0x7f;
    std::size_t at = 2;
    if (n == 126) {
        if (in.size() < 4) return 0;
        n = (std::uint64_t{byte(2)} << 8) | byte(3);
        at = 4;
    } else if (n == 127) {
        if (in.size() < 10) return 0;
        n = 0;
        for (std::size_t i = 2; i < 10; ++i) n = (n << 8) | byte(i);
        at = 10;
    }
    if (n > max_frame) {
        throw std::runtime_error("a frame of " + std::to_string(n) +
                                 " bytes, more than the 16 MiB plugd-bench takes");
    }
    if (in.size() - at < n) return 0;
    f = {static_cast<unsigned char>(byte(0) & 0x0f), (byte(0) & 0x80) != 0, in.substr(at, n)};
    return at + n;
}

std::string read_error(const boost::system::error_code& ec) {
    if (ec == asio::error::eof) return "the server closed the connection without a close frame";
    return "read: " + ec.message();
}

std::string lowercase(std::string_view s) {
    std::string out{s};
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// What is wrong with a server's reply to the upgrade request (its head, without the blank
// line), or nothing.
std::string refused_upgrade(std::string_view head) {
    const auto status = head.substr(0, head.find("\r\n"));
    if (!status.starts_with("HTTP/1.1 101")) {
        return "the server did not switch protocols: \"" + std::string{status} + "\"";
    }
    bool upgrade = false, accept = false;
    for (auto at = head.find("\r\n"); at != std::string_view::npos;) {
        const auto next = head.find("\r\n", at + 2);
        const auto field = head.substr(at + 2, next == head.npos ? head.npos : next - at - 2);
        at = next;
        const auto colon = field.find(':');
        if (colon == field.npos) continue;
        auto value = field.substr(colon + 1);
        while (value.starts_with(' ') || value.starts_with('\t')) value.remove_prefix(1);
        while (value.ends_with(' ') || value.ends_with('\t')) value.remove_suffix(1);
        const auto name = lowercase(field.substr(0, colon));
        if (name == "upgrade") upgrade = lowercase(value) == "websocket";
        if (name == "sec-websocket-accept") accept = value == sample_accept;
    }
    if (!upgrade) return "the 101 reply has no \"Upgrade: websocket\"";
    if (!accept) return "the 101 reply's Sec-WebSocket-Accept does not answer the key sent";
    return {};
}

// What one client thread counted; merged after the run.
struct thread_tally {
    std::uint64_t delivered = 0, errors = 0, mismatches = 0;
    latency_histogram latency;
    std::string first_error, first_mismatch;
    unsigned share = 0;   // subscribers this thread opens
    unsigned opened = 0;  // of those, taken by a connector so far

    void error(std::string what) {
        if (errors++ == 0) first_error = std::move(what);
    }
    void mismatch(std::string_view message) {
        if (mismatches++ == 0) first_mismatch = message.substr(0, 200);
    }
};

// What the threads share. Written from every thread, hence atomic: the counters of messages
// seen, `completed`, `upgraded`, `failed`, and the window (set once, before the first message).
// The rest belongs to the first thread, the publisher's.
struct room_load {
    room_load(const websocket_options& o, asio::io_context& first)
        : o{o},
          seen{std::make_unique<std::atomic<std::uint32_t>[]>(o.in_flight)},
          publisher_io{first},
          wake{first},
          publisher{first} {}

    const websocket_options& o;
    tcp::resolver::results_type endpoints;
    std::string request;  // the upgrade request, the same for every session
    // seen[seq % in_flight]: subscribers that have read message seq. The publisher resets a
    // slot before sending the message that takes it, which is only once the slot's previous
    // message has reached everyone: nobody counts on a slot while it is reset.
    std::unique_ptr<std::atomic<std::uint32_t>[]> seen;
    std::atomic<std::uint64_t> completed{0};  // every message up to this one reached everyone
    std::atomic<unsigned> upgraded{0};
    std::atomic<bool> failed{false};
    std::atomic<std::int64_t> measure_ns{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> stop_ns{std::numeric_limits<std::int64_t>::max()};

    // The publisher's, on the first thread.
    asio::io_context& publisher_io;
    asio::steady_timer wake;  // cancelled when `completed` moves or a pong is due
    tcp::socket publisher;
    std::string pongs;       // answers to the server's pings, sent before the next message
    std::uint64_t sent = 0;  // messages sent in the measured window
    std::uint64_t last = 0;  // the last message sent

    void fail(thread_tally& t, std::string what) {
        t.error(std::move(what));
        failed = true;
    }
    // A subscriber read message `seq` (in order): the last to do so completes it.
    void count(std::uint64_t seq) {
        if (seen[seq % o.in_flight].fetch_add(1) + 1 != o.subscribers) return;
        auto done = completed.load();
        while (done < seq && !completed.compare_exchange_weak(done, seq)) {
        }
        asio::post(publisher_io, [this] { wake.cancel(); });
    }
};

// Connects `s` and upgrades it to a WebSocket session on o.path: an error, or nothing with
// what the server sent after its 101 reply in `in`.
asio::awaitable<std::string> upgrade(room_load& r, tcp::socket& s, std::string& in) {
    auto [cec, at] = co_await asio::async_connect(s, r.endpoints, as_tuple);
    if (cec) co_return "connect: " + cec.message();
    boost::system::error_code ignored;
    s.set_option(tcp::no_delay{true}, ignored);
    auto [wec, w] = co_await asio::async_write(s, asio::buffer(r.request), as_tuple);
    if (wec) co_return "writing the upgrade request: " + wec.message();
    char chunk[4096];
    for (;;) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), as_tuple);
        in.append(chunk, n);
        const auto end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto refused = refused_upgrade(std::string_view{in}.substr(0, end));
            in.erase(0, end + 4);
            co_return refused;
        }
        if (ec) co_return "reading the reply to the upgrade request: " + ec.message();
        if (in.size() > 16384) co_return "a reply to the upgrade request of more than 16 KiB";
    }
}

// The frames of one connection, in order: a message split over frames is put together.
struct frame_reader {
    std::string in;       // an incomplete frame's bytes, kept between reads
    std::string partial;  // a fragmented message's payload so far
    bool fragmented = false;

    // Takes every complete frame of `data`, calling on_message for each data message and
    // answering pings into `reply`; keeps the rest for the next call. Throws
    // std::runtime_error for a close, or a frame the server must not send.
    template <typename OnMessage>
    void take(std::string_view data, std::string& reply, std::uint32_t mask, OnMessage on_message) {
        if (!in.empty()) {
            in.append(data);
            data = in;
        }
        std::size_t used = 0;
        server_frame f;
        while (const auto n = next_server_frame(data.substr(used), f)) {
            used += n;
            switch (f.opcode) {
                case text:
                case binary:
                case continuation:
                    if ((f.opcode == continuation) != fragmented) {
                        throw std::runtime_error(fragmented
                                                     ? "a new message inside a fragmented one"
                                                     : "a continuation frame out of place");
                    }
                    if (f.fin && !fragmented) {
                        on_message(f.payload);
                    } else {
                        partial.append(f.payload);
                        fragmented = !f.fin;
                        if (f.fin) {
                            on_message(std::string_view{partial});
                            partial.clear();
                        }
                    }
                    break;
                case ping:
                    append_client_frame(reply, pong, f.payload, mask);
                    break;
                case pong:
                    break;
                case close_frame: {
                    std::string why = "the server closed the session";
                    if (f.payload.size() >= 2) {
                        const auto code = (static_cast<unsigned char>(f.payload[0]) << 8) |
                                          static_cast<unsigned char>(f.payload[1]);
                        why += " with " + std::to_string(code);
                        if (f.payload.size() > 2)
                            why += " \"" + std::string{f.payload.substr(2)} + "\"";
                    }
                    throw std::runtime_error(why);
                }
                default:
                    throw std::runtime_error("a frame of unknown opcode " +
                                             std::to_string(f.opcode));
            }
        }
        if (in.empty()) {
            in.assign(data.substr(used));
        } else {
            in.erase(0, used);
        }
    }
};

// A subscriber's session after its upgrade: reads messages until the run ends, checking that
// each is the next one and unaltered, and counting it.
asio::awaitable<void> subscribe(room_load& r, thread_tally& t, tcp::socket s, std::string in) {
    frame_reader frames;
    std::string reply;
    char chunk[read_size];
    std::uint64_t expected = 1;  // subscribers join before the first message
    const auto mask = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&frames));
    std::int64_t now = 0;
    const auto on_message = [&](std::string_view m) {
        // "<seq> <send time ns> " then 'x' up to the size asked for.
        std::uint64_t seq = 0;
        std::int64_t sent = 0;
        const char* end = m.data() + m.size();
        auto [p1, e1] = std::from_chars(m.data(), end, seq);
        if (e1 != std::errc{} || p1 == end || *p1 != ' ') return t.mismatch(m);
        auto [p2, e2] = std::from_chars(p1 + 1, end, sent);
        if (e2 != std::errc{} || p2 == end || *p2 != ' ') return t.mismatch(m);
        const auto header = static_cast<std::size_t>(p2 + 1 - m.data());
        if (seq != expected || m.size() != std::max(header, r.o.size) ||
            !std::all_of(p2 + 1, end, [](char c) { return c == 'x'; })) {
            return t.mismatch(m);
        }
        ++expected;
        if (now >= r.measure_ns.load(std::memory_order_relaxed) &&
            now < r.stop_ns.load(std::memory_order_relaxed)) {
            ++t.delivered;
            t.latency.record(
                static_cast<std::uint64_t>(std::max<std::int64_t>(now - sent, 0) / 1000));
        }
        r.count(seq);
    };
    for (std::string_view data = in;;) {
        now = now_ns();  // once per read: the latency of every message it brought
        try {
            frames.take(data, reply, mask, on_message);
        } catch (const std::exception& e) {
            r.fail(t, std::string{"a subscriber: "} + e.what());
            co_return;
        }
        if (!reply.empty()) {
            auto [ec, n] = co_await asio::async_write(s, asio::buffer(reply), as_tuple);
            if (ec) {
                if (!r.failed) r.fail(t, "a subscriber: write: " + ec.message());
                co_return;
            }
            reply.clear();
        }
        auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), as_tuple);
        if (ec) {
            if (!r.failed) r.fail(t, "a subscriber: " + read_error(ec));
            co_return;
        }
        data = {chunk, n};
    }
}

// One of the connectors of a thread: opens that thread's subscribers, one at a time, and
// hands each to its own coroutine.
asio::awaitable<void> open_subscribers(room_load& r, thread_tally& t) {
    const auto ex = co_await asio::this_coro::executor;
    while (t.opened < t.share && !r.failed) {
        ++t.opened;
        tcp::socket s{ex};
        std::string in;
        if (auto error = co_await upgrade(r, s, in); !error.empty()) {
            r.fail(t, "a subscriber: " + error);
            co_return;
        }
        ++r.upgraded;
        asio::co_spawn(ex, subscribe(r, t, std::move(s), std::move(in)),
                       [&r, &t](std::exception_ptr e) {
                           if (e) r.fail(t, "an unexpected exception in a subscriber");
                       });
    }
}

// The publisher's reading side: the server sends it nothing but pings (a chat does not echo
// a message to its sender; one that does fails the run's check).
asio::awaitable<void> publisher_reads(room_load& r, thread_tally& t, std::string in) {
    frame_reader frames;
    std::string reply;
    char chunk[read_size];
    const auto on_message = [&](std::string_view) {
        t.mismatch("(the publisher's own message, sent back to it)");
    };
    for (std::string_view data = in;;) {
        try {
            frames.take(data, reply, 0x5a17c0de, on_message);
        } catch (const std::exception& e) {
            r.fail(t, std::string{"the publisher: "} + e.what());
            co_return;
        }
        if (!reply.empty()) {
            // The sending side writes, so that frames never interleave.
            r.pongs += reply;
            reply.clear();
            r.wake.cancel();
        }
        auto [ec, n] = co_await r.publisher.async_read_some(asio::buffer(chunk), as_tuple);
        if (ec) {
            if (!r.failed) r.fail(t, "the publisher: " + read_error(ec));
            co_return;
        }
        data = {chunk, n};
    }
}

// The publisher's sending side: "<seq> <send time ns> " and padding, while the window allows.
asio::awaitable<void> publish(room_load& r, thread_tally& t) {
    std::mt19937 masks{std::random_device{}()};
    std::string message, frame;
    for (std::uint64_t seq = 1; !r.failed; ++seq) {
        while (seq > r.completed.load() + r.o.in_flight && !r.failed) {
            if (!r.pongs.empty()) {
                frame.swap(r.pongs);
                auto [ec, n] =
                    co_await asio::async_write(r.publisher, asio::buffer(frame), as_tuple);
                frame.clear();
                if (ec) co_return r.fail(t, "the publisher: write: " + ec.message());
                continue;
            }
            r.wake.expires_at(clock_type::time_point::max());
            co_await r.wake.async_wait(as_tuple);
        }
        const auto sent = now_ns();
        if (sent >= r.stop_ns.load()) co_return;
        r.seen[seq % r.o.in_flight] = 0;
        message = std::to_string(seq) + ' ' + std::to_string(sent) + ' ';
        if (message.size() < r.o.size) message.append(r.o.size - message.size(), 'x');
        frame.swap(r.pongs);
        append_client_frame(frame, text, message, static_cast<std::uint32_t>(masks()));
        r.last = seq;
        if (sent >= r.measure_ns.load()) ++r.sent;
        auto [ec, n] = co_await asio::async_write(r.publisher, asio::buffer(frame), as_tuple);
        frame.clear();
        if (ec) co_return r.fail(t, "the publisher: write: " + ec.message());
    }
}

// The run's course, on the first thread: subscribers, their idle footprint, the publisher,
// the measured window; then it stops every thread.
asio::awaitable<void> conduct(room_load& r, thread_tally& t, std::list<asio::io_context>& ios,
                              const std::optional<process_sample>& before, websocket_result& out) {
    const auto& o = r.o;
    asio::steady_timer tick{co_await asio::this_coro::executor};
    const auto pause = [&](auto d) -> asio::awaitable<void> {
        tick.expires_after(d);
        co_await tick.async_wait(as_tuple);
    };
    const auto finish = [&] {
        for (auto& io : ios) io.stop();
    };
    const auto started = clock_type::now();
    auto progress = started;
    for (unsigned seen = 0; r.upgraded < o.subscribers;) {
        if (r.failed) co_return finish();
        co_await pause(20ms);
        if (r.upgraded != seen) {
            seen = r.upgraded;
            progress = clock_type::now();
        } else if (clock_type::now() - progress > std::chrono::duration<double>{o.timeout}) {
            r.fail(t, std::to_string(seen) + " of " + std::to_string(o.subscribers) +
                          " subscribers upgraded, then none for --timeout");
            co_return finish();
        }
    }
    out.setup_seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    if (o.server_pid) {
        // (Blocks this thread for a moment: its subscribers have nothing to do meanwhile.)
        const auto idle = settled_sample(o.server_pid);
        if (!idle) {
            r.fail(t, "the server exited during the run");
            co_return finish();
        }
        out.server_rss_per_session_bytes =
            idle->rss_kib > before->rss_kib
                ? (idle->rss_kib - before->rss_kib) * 1024 / o.subscribers
                : 0;
    }

    std::string in;
    if (auto error = co_await upgrade(r, r.publisher, in); !error.empty()) {
        r.fail(t, "the publisher: " + error);
        co_return finish();
    }
    const auto to_ns = [](double s) { return static_cast<std::int64_t>(s * 1e9); };
    const auto measure = now_ns() + to_ns(o.warmup);
    const auto stop = measure + to_ns(o.duration);
    r.measure_ns = measure;
    r.stop_ns = stop;
    const auto ex = co_await asio::this_coro::executor;
    const auto failed = [&r, &t](std::exception_ptr e) {
        if (e) r.fail(t, "an unexpected exception in the publisher");
    };
    asio::co_spawn(ex, publisher_reads(r, t, std::move(in)), failed);
    asio::co_spawn(ex, publish(r, t), failed);

    // Watches for a stall (a message in flight and none completed for --timeout) until the
    // window opens, samples, watches until it closes, samples.
    std::optional<process_sample> at_measure, at_stop;
    std::uint64_t done = 0;
    progress = clock_type::now();
    for (bool measuring = false; !r.failed;) {
        co_await pause(20ms);
        const auto now = now_ns();
        if (!measuring && now >= measure) {
            measuring = true;
            if (o.server_pid && !(at_measure = sample_process(o.server_pid))) {
                r.fail(t, "the server exited during the run");
                break;
            }
        }
        if (now >= stop) {
            if (o.server_pid && !(at_stop = sample_process(o.server_pid))) {
                r.fail(t, "the server exited during the run");
            }
            break;
        }
        if (r.completed != done || r.last == r.completed) {
            done = r.completed;
            progress = clock_type::now();
        } else if (clock_type::now() - progress > std::chrono::duration<double>{o.timeout}) {
            r.fail(t, "message " + std::to_string(done + 1) + " reached " +
                          std::to_string(r.seen[(done + 1) % o.in_flight].load()) + " of " +
                          std::to_string(o.subscribers) + " subscribers, then none for --timeout");
            break;
        }
    }
    out.seconds = std::max(0.0, static_cast<double>(std::min(now_ns(), stop) - measure) / 1e9);
    if (at_measure && at_stop) {
        out.server_rss_kib = at_stop->rss_kib;
        out.server_cpu_us_per_message =
            at_stop->cpu_seconds - at_measure->cpu_seconds;  // scaled below
    }
    finish();
}

}  // namespace

websocket_result run_websocket_load(const websocket_options& o) {
    std::list<asio::io_context> ios;  // a list: an io_context cannot move
    for (unsigned i = 0; i < o.threads; ++i) ios.emplace_back(1);
    std::vector<thread_tally> tallies(o.threads);
    websocket_result out;
    room_load r{o, ios.front()};
    try {
        tcp::resolver resolver{ios.front()};
        r.endpoints = resolver.resolve(o.host, std::to_string(o.port));
    } catch (const std::exception& e) {
        out.errors = 1;
        out.first_error = "cannot resolve " + o.host + ": " + e.what();
        return out;
    }
    r.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                std::string{sample_key} + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::optional<process_sample> before;
    if (o.server_pid) {
        // One session first (see warm_up.hpp): its upgrade answered, then closed.
        const std::string error = warm_up_exchange(
            r.endpoints, r.request,
            [](std::string_view in) { return in.find("\r\n\r\n") != in.npos; }, false, o.timeout);
        if (!error.empty()) {
            out.errors = 1;
            out.first_error = "the warm-up session: " + error;
            return out;
        }
        before = settled_sample(o.server_pid);
    }
    if (o.server_pid && !before) {
        out.errors = 1;
        out.first_error = "cannot read /proc/" + std::to_string(o.server_pid) +
                          "/stat and /status: is the server running on this machine as that pid?";
        return out;
    }

    auto io = ios.begin();
    for (unsigned i = 0; i < o.threads; ++i, ++io) {
        auto& t = tallies[i];
        t.share = o.subscribers / o.threads + (i < o.subscribers % o.threads ? 1 : 0);
        const unsigned connectors =
            std::clamp(max_handshakes / o.threads, 1u, std::max(t.share, 1u));
        for (unsigned c = 0; c < connectors; ++c) {
            asio::co_spawn(*io, open_subscribers(r, t), [&r, &t](std::exception_ptr e) {
                if (e) r.fail(t, "an unexpected exception while connecting");
            });
        }
    }
    asio::co_spawn(ios.front(), conduct(r, tallies.front(), ios, before, out),
                   [&r, &t = tallies.front(), &ios](std::exception_ptr e) {
                       if (e) r.fail(t, "an unexpected exception in the run");
                       for (auto& i : ios) i.stop();
                   });
    std::vector<std::thread> workers;
    for (auto i = std::next(ios.begin()); i != ios.end(); ++i)
        workers.emplace_back([i] { i->run(); });
    ios.front().run();
    for (auto& w : workers) w.join();

    for (auto& t : tallies) {
        out.delivered += t.delivered;
        out.errors += t.errors;
        out.mismatches += t.mismatches;
        out.latency.merge(t.latency);
        if (out.first_error.empty()) out.first_error = t.first_error;
        if (out.first_mismatch.empty()) out.first_mismatch = t.first_mismatch;
    }
    out.sent = r.sent;
    if (out.server_cpu_us_per_message) {
        if (out.delivered > 0) {
            *out.server_cpu_us_per_message *= 1e6 / static_cast<double>(out.delivered);
        } else {
            out.server_cpu_us_per_message.reset();
        }
    }
    return out;
}

}  // namespace plugd::bench
