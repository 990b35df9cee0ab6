// tls_client: the `tls` benchmark's client (compare.sh tls). HTTPS connections to any
// server, each a handshake and one GET checked byte for byte: new connections (full
// handshakes) or resumed ones per second, with the server's CPU time per handshake, or
// connections kept idle after their request, with the server's memory per connection.
// Blocking sockets and a thread per client: one connection at a time per thread, so the
// figures are the handshakes' and not the client's scheduling.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "process_sample.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using plugd::bench::process_sample;
using plugd::bench::sample_process;

constexpr std::string_view usage =
    R"(usage: plugd_bench_tls --port P --mode full|resumed|idle [options]

  --port P           the server's HTTPS port on 127.0.0.1 (required)
  --mode full        new connections, each a full handshake, GET /world, close
         resumed     the same, each resuming the session of the thread's previous connection
                     (TLS 1.3: the ticket the server sent on it)
         idle        --connections connections, each a full handshake and GET /world, then
                     kept open and idle while the server's memory is read
  --threads N        client threads, one connection at a time each (default 2)
  --duration S       full, resumed: measured seconds (default 3)
  --warmup S         full, resumed: seconds before measuring (default 1)
  --connections N    idle: connections (default 4000)
  --tls1.2           offer TLS 1.2 only (default: TLS 1.2 and 1.3, so 1.3)
  --server-pid PID   the server's process: report its CPU time per handshake (full,
                     resumed) or its resident memory per idle connection (idle), from /proc

Every answer must be "HTTP/1.1 200" with the body "Hello, world"; with --mode resumed every
connection but each thread's first must resume. Prints one line of key=value figures; exits
0, or 1 when a connection failed, an answer differed or a session was not resumed.
)";

struct options {
    int port = 0;
    std::string mode;
    int threads = 2;
    double duration = 3;
    double warmup = 1;
    int connections = 4000;
    bool tls12 = false;
    int server_pid = 0;
};

[[noreturn]] void fail(const std::string& what) {
    std::cerr << "plugd_bench_tls: " << what << '\n';
    std::exit(1);
}

// OpenSSL's reason for the last failure, clearing its queue.
std::string ssl_reason() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return std::strerror(errno);
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return text;
}

// One client connection: its socket and TLS state, freed together.
class connection {
  public:
    connection() = default;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    connection(connection&& o) noexcept : fd_{o.fd_}, ssl_{o.ssl_} {
        o.fd_ = -1;
        o.ssl_ = nullptr;
    }
    ~connection() {
        if (ssl_) {
            // Closed without a close_notify, as browsers do; marked shut so OpenSSL keeps the
            // session resumable (it drops sessions of connections that end uncleanly).
            SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            SSL_free(ssl_);
        }
        if (fd_ >= 0) ::close(fd_);
    }

    // Connects, handshakes (resuming `session` if given) and asks GET /world; throws
    // std::runtime_error saying which step failed.
    void open(SSL_CTX* ctx, int port, SSL_SESSION* session) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) throw std::runtime_error{std::string{"socket: "} + std::strerror(errno)};
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<std::uint16_t>(port));
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
            throw std::runtime_error{std::string{"connect: "} + std::strerror(errno)};
        ssl_ = SSL_new(ctx);
        if (!ssl_) throw std::runtime_error{"SSL_new: " + ssl_reason()};
        SSL_set_fd(ssl_, fd_);
        if (session) SSL_set_session(ssl_, session);
        ERR_clear_error();
        if (SSL_connect(ssl_) != 1) throw std::runtime_error{"handshake: " + ssl_reason()};

        constexpr std::string_view request = "GET /world HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) !=
            static_cast<int>(request.size()))
            throw std::runtime_error{"writing the request: " + ssl_reason()};
        // The answer: its head, then Content-Length bytes of body.
        std::string answer;
        std::size_t head_end = std::string::npos, length = 0;
        for (;;) {
            char buffer[4096];
            const int n = SSL_read(ssl_, buffer, sizeof buffer);
            if (n <= 0)
                throw std::runtime_error{"reading the answer (after " +
                                         std::to_string(answer.size()) +
                                         " bytes): " + ssl_reason()};
            answer.append(buffer, static_cast<std::size_t>(n));
            if (head_end == std::string::npos) {
                head_end = answer.find("\r\n\r\n");
                if (head_end == std::string::npos) continue;
                head_end += 4;
                length = content_length(answer.substr(0, head_end));
            }
            if (answer.size() >= head_end + length) break;
        }
        if (!answer.starts_with("HTTP/1.1 200") || answer.substr(head_end) != "Hello, world")
            throw std::runtime_error{"unexpected answer: " + answer};
    }

    bool resumed() const { return SSL_session_reused(ssl_) == 1; }
    // The session to resume next: the newest ticket the server sent on this connection.
    SSL_SESSION* session() const { return SSL_get1_session(ssl_); }
    int fd() const { return fd_; }

  private:
    static std::size_t content_length(const std::string& head) {
        std::string lower = head;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const auto at = lower.find("\r\ncontent-length:");
        if (at == std::string::npos)
            throw std::runtime_error{"an answer without Content-Length: " + head};
        return std::stoul(lower.substr(at + 17));
    }

    int fd_ = -1;
    SSL* ssl_ = nullptr;
};

struct session_deleter {
    void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};
using session_ptr = std::unique_ptr<SSL_SESSION, session_deleter>;

// What every thread of a full or resumed run counts (atomics: the main thread reads them
// at the start and the end of the measured time).
struct tally {
    std::atomic<std::uint64_t> handshakes{0};
    std::atomic<std::uint64_t> resumed{0};
};

// One thread of a full or resumed run: connections one after the other until `stop`.
void handshakes(SSL_CTX* ctx, const options& o, tally& t, const std::atomic<bool>& stop,
                std::string& error) {
    const bool resume = o.mode == "resumed";
    session_ptr session;
    bool first = true;
    try {
        while (!stop.load(std::memory_order_relaxed)) {
            connection c;
            c.open(ctx, o.port, session.get());
            if (resume) {
                if (!first && !c.resumed())
                    throw std::runtime_error{"the server did not resume the session"};
                session.reset(c.session());
                if (!session || SSL_SESSION_is_resumable(session.get()) != 1)
                    throw std::runtime_error{"the server sent no ticket to resume with"};
            }
            first = false;
            t.handshakes.fetch_add(1, std::memory_order_relaxed);
            if (c.resumed()) t.resumed.fetch_add(1, std::memory_order_relaxed);
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
}

std::optional<process_sample> sample(const options& o) {
    if (!o.server_pid) return std::nullopt;
    auto s = sample_process(o.server_pid);
    if (!s) fail("cannot read /proc/" + std::to_string(o.server_pid) + ": is the server running?");
    return s;
}

int run_handshakes(SSL_CTX* ctx, const options& o) {
    tally t;
    std::atomic<bool> stop{false};
    std::vector<std::string> errors(static_cast<std::size_t>(o.threads));
    std::vector<std::thread> threads;
    for (int i = 0; i < o.threads; ++i)
        threads.emplace_back(handshakes, ctx, std::cref(o), std::ref(t), std::cref(stop),
                             std::ref(errors[static_cast<std::size_t>(i)]));
    std::this_thread::sleep_for(std::chrono::duration<double>{o.warmup});
    const auto cpu_before = sample(o);
    const auto n_before = t.handshakes.load(), r_before = t.resumed.load();
    const auto start = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>{o.duration});
    const auto n = t.handshakes.load() - n_before, r = t.resumed.load() - r_before;
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    const auto cpu_after = sample(o);
    stop = true;
    for (auto& th : threads) th.join();
    for (const auto& e : errors)
        if (!e.empty()) fail(o.mode + " handshakes to port " + std::to_string(o.port) + ": " + e);
    if (n == 0) fail("no handshake finished in the measured time");
    std::printf("handshakes/s=%.0f handshakes=%llu resumed=%llu", static_cast<double>(n) / seconds,
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(r));
    if (cpu_before)
        std::printf(
            " server_cpu_us_per_handshake=%.1f",
            (cpu_after->cpu_seconds - cpu_before->cpu_seconds) * 1e6 / static_cast<double>(n));
    std::printf("\n");
    return 0;
}

// Opens `count` connections on `threads` threads (each a handshake and a request), into `out`.
void open_many(SSL_CTX* ctx, const options& o, int count, std::vector<connection>& out) {
    std::mutex m;
    std::string error;
    std::vector<std::thread> threads;
    for (int i = 0; i < o.threads; ++i) {
        const int share = count / o.threads + (i < count % o.threads ? 1 : 0);
        threads.emplace_back([&, share] {
            std::vector<connection> mine;
            try {
                for (int k = 0; k < share; ++k) {
                    mine.emplace_back();
                    mine.back().open(ctx, o.port, nullptr);
                }
            } catch (const std::exception& e) {
                const std::lock_guard lock{m};
                error = "connection " + std::to_string(mine.size()) + " of a thread: " + e.what();
            }
            const std::lock_guard lock{m};
            for (auto& c : mine) out.push_back(std::move(c));
        });
    }
    for (auto& th : threads) th.join();
    if (!error.empty()) fail(error);
}

int run_idle(SSL_CTX* ctx, const options& o) {
    // Warm-up: the server's first handshakes load what every later one shares (OpenSSL's
    // algorithms, the first buffers), which is no connection's cost.
    {
        std::vector<connection> warm;
        open_many(ctx, o, 8 * o.threads, warm);
    }
    std::this_thread::sleep_for(200ms);
    const auto before = sample(o);
    std::vector<connection> held;
    held.reserve(static_cast<std::size_t>(o.connections));
    const auto start = clock_type::now();
    open_many(ctx, o, o.connections, held);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    // Let the server finish with the last answers (and free what it frees when idle).
    std::this_thread::sleep_for(1s);
    const auto after = sample(o);
    // Every connection must still be open and quiet: a server that closed some would seem
    // to hold them for less.
    std::vector<pollfd> fds;
    for (const auto& c : held) fds.push_back({c.fd(), POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), 0);
    if (ready != 0)
        fail(std::to_string(ready) + " of the idle connections were closed or written to");
    std::printf("connections=%zu opened_in_s=%.2f", held.size(), seconds);
    if (before)
        std::printf(
            " server_rss_before_kib=%llu server_rss_after_kib=%llu "
            "server_rss_per_connection_bytes=%lld",
            static_cast<unsigned long long>(before->rss_kib),
            static_cast<unsigned long long>(after->rss_kib),
            (static_cast<long long>(after->rss_kib) - static_cast<long long>(before->rss_kib)) *
                1024 / static_cast<long long>(held.size()));
    std::printf("\n");
    return 0;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "plugd_bench_tls: " << arg << " needs a value\n" << usage;
                std::exit(2);
            }
            return argv[++i];
        };
        try {
            if (arg == "--port")
                o.port = std::stoi(value());
            else if (arg == "--mode")
                o.mode = value();
            else if (arg == "--threads")
                o.threads = std::stoi(value());
            else if (arg == "--duration")
                o.duration = std::stod(value());
            else if (arg == "--warmup")
                o.warmup = std::stod(value());
            else if (arg == "--connections")
                o.connections = std::stoi(value());
            else if (arg == "--tls1.2")
                o.tls12 = true;
            else if (arg == "--server-pid")
                o.server_pid = std::stoi(value());
            else {
                std::cerr << "plugd_bench_tls: unknown option " << arg << '\n' << usage;
                std::exit(2);
            }
        } catch (const std::logic_error&) {
            std::cerr << "plugd_bench_tls: " << arg << ": not a number\n" << usage;
            std::exit(2);
        }
    }
    if (o.port <= 0 || (o.mode != "full" && o.mode != "resumed" && o.mode != "idle") ||
        o.threads < 1 || o.duration <= 0 || o.warmup < 0 || o.connections < 1) {
        std::cerr << usage;
        std::exit(2);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    if (o.mode == "idle") {
        // One descriptor per idle connection, and the server's as many on this machine.
        rlimit limit{};
        getrlimit(RLIMIT_NOFILE, &limit);
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        if (limit.rlim_cur < static_cast<rlim_t>(o.connections) + 64)
            fail("--connections " + std::to_string(o.connections) +
                 " needs more descriptors than this process may open (ulimit -Hn: " +
                 std::to_string(limit.rlim_max) + ")");
    }
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) fail("SSL_CTX_new: " + ssl_reason());
    // The server's certificate chain is not verified (a CA signature more per handshake on
    // the client, which is already the slower side); its CertificateVerify still is, by TLS.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (o.tls12) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    // Sessions are kept by the threads themselves (the newest ticket of each), not cached.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    const int status = o.mode == "idle" ? run_idle(ctx, o) : run_handshakes(ctx, o);
    SSL_CTX_free(ctx);
    return status;
}
