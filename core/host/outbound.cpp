// outbound: resolving, connecting, the TLS handshake and stream I/O with per-operation
// timeouts; the pool.
#include "host/outbound.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <functional>
#include <limits>
#include <stdexcept>

#include "host/buffered_stream.hpp"
#include "host/host.hpp"
#include "host/suspension.hpp"

namespace plugd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto as_tuple = asio::as_tuple(asio::deferred);

// A deadline for one operation: if `limit` passes first, `cancel` runs (it cancels the
// socket's or resolver's pending operation, which then completes with operation_aborted).
// One timer per stream, re-armed for each operation; an expiry that arrives after the
// operation ended (or after the stream is gone) is recognised and ignored.
class deadline {
  public:
    explicit deadline(const asio::any_io_executor& ex) : timer_{ex} {}

    void arm(std::chrono::milliseconds limit, std::function<void()> cancel) {
        expired_ = false;
        timer_.expires_after(limit);
        timer_.async_wait([this, alive = std::weak_ptr<int>{alive_}, armed = ++armed_,
                           cancel = std::move(cancel)](const boost::system::error_code& ec) {
            if (ec || alive.expired() || armed != armed_) return;
            expired_ = true;
            cancel();
        });
    }
    void disarm() noexcept {
        ++armed_;
        timer_.cancel();
    }
    bool expired() const noexcept { return expired_; }

  private:
    asio::steady_timer timer_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
    std::uint64_t armed_ = 0;
    bool expired_ = false;
};

// Throws for a failed operation: a timeout says which limit, anything else the error.
[[noreturn]] void fail(const std::string& where, const char* operation,
                       const boost::system::error_code& ec, const deadline& d,
                       std::chrono::milliseconds limit, const char* limit_name) {
    if (d.expired()) {
        throw boost::system::system_error(
            asio::error::timed_out, where + ": " + operation + " timed out after " + limit_name +
                                        " (" + std::to_string(limit.count()) + " ms)");
    }
    throw boost::system::system_error(ec, where + ": " + operation);
}

// The reads over one buffer are buffered_stream's; a stream differs from a client's
// connection in what a close means (see fill()) and in that a failure unpools it.
// A TLS stream runs OpenSSL over the same socket (tls_link), which stays non-blocking:
// OpenSSL's want-read or want-write becomes a wait on the socket under the same deadline.
class stream_impl final : public buffered_stream<stream> {
  public:
    // No lease of its own: a stream lives inside the handler or task that opened it (see
    // plugd::stream), whose request or lease keeps the version loaded.
    // `key`: the pool's; `peer`: host:port, for messages.
    stream_impl(outbound_pools& pools, std::size_t thread, std::string key, std::string peer,
                outbound_pools::idle_connection connection)
        : pools_{pools},
          thread_{thread},
          key_{std::move(key)},
          peer_{std::move(peer)},
          socket_{std::move(connection.socket)},
          tls_{std::move(connection.tls)},
          deadline_{socket_.get_executor()} {}

    ~stream_impl() override {
        deadline_.disarm();
        if (reusable_ && buffered().empty() && socket_.is_open()) {
            pools_.give_back(thread_, key_, {std::move(socket_), std::move(tls_)});
        } else if (tls_ && !failed_ && socket_.is_open()) {
            tls_.close_notify();
        }
    }

    // The TLS handshake of a new connection, within connect_timeout_ms; throws naming
    // `where` (the plugin too: this failure is connect()'s).
    asio::awaitable<void> handshake(const std::string& where) {
        const auto limit = pools_.settings().connect_timeout;
        deadline_.arm(limit, [this] { cancel_socket(); });
        co_await until_done([&] { return tls_.handshake(where); }, where, "TLS handshake", limit,
                            "connect_timeout_ms");
    }

    asio::awaitable<std::size_t> read_some(char* data, std::size_t size) override {
        if (!buffered().empty()) co_return co_await buffered_stream::read_some(data, size);
        // Nothing read ahead: straight into the plugin's memory, as much as it asks for.
        co_return co_await receive(data, size);
    }

    asio::awaitable<void> write(std::string_view bytes) override {
        check_open();
        reusable_ = false;  // until the exchange is declared complete again
        const auto limit = pools_.settings().io_timeout;
        deadline_.arm(limit, [this] { cancel_socket(); });
        before_suspend();
        if (tls_) {
            co_await tls_write(bytes, limit);
            co_return;
        }
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(bytes), as_tuple);
        deadline_.disarm();
        if (ec) {
            broken();
            fail(describe(), "write", ec, deadline_, limit, "io_timeout_ms");
        }
    }

    void recycle() noexcept override { reusable_ = !failed_ && socket_.is_open(); }

    void close() noexcept override {
        reusable_ = false;
        if (tls_ && !failed_ && socket_.is_open()) tls_.close_notify();
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

  protected:
    // Only read_until and read_exactly fill (read_some receives itself), and on a stream
    // they throw when the peer closes first, even between two replies (plugd::stream): so
    // this throws where a connection's fill returns false.
    asio::awaitable<bool> fill(std::string& buffer, bool) override {
        char chunk[4096];
        const std::size_t n = co_await receive(chunk, sizeof chunk);
        if (n == 0) {
            throw std::runtime_error(describe() + ": closed by the peer in the middle of a reply");
        }
        buffer.append(chunk, n);
        co_return true;
    }
    void message_refused() noexcept override { broken(); }
    // read_until's max_bytes is the only limit.
    std::size_t max_read_bytes() const noexcept override {
        return std::numeric_limits<std::size_t>::max();
    }
    std::string describe() const override {
        return "outbound " + std::string{tls_ ? "TLS " : ""} + "connection to " + peer_;
    }

  private:
    void check_open() const {
        if (!socket_.is_open()) throw std::logic_error(describe() + ": used after close()");
    }

    void cancel_socket() noexcept {
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    }

    // A failed operation leaves the protocol state unknown: never pooled.
    void broken() noexcept {
        failed_ = true;
        reusable_ = false;
    }

    // Until the socket is ready for what OpenSSL wants; the error that ended the wait.
    asio::awaitable<boost::system::error_code> wait_for(tls_link::step step) {
        const auto what =
            step == tls_link::step::want_write ? tcp::socket::wait_write : tcp::socket::wait_read;
        auto [ec] = co_await socket_.async_wait(what, as_tuple);
        co_return ec;
    }

    // Repeats `attempt` (one non-blocking tls_link step) until it is done or the peer
    // closed, waiting in between for what OpenSSL asks, under the deadline the caller armed
    // (`limit`, named `limit_name` in the timeout's message); then disarms it. A failure
    // leaves the stream broken and throws: OpenSSL's error as `attempt` threw it, or
    // `operation` failed or timed out, said of `where`.
    template <class Attempt>
    asio::awaitable<tls_link::step> until_done(Attempt attempt, const std::string& where,
                                               const char* operation,
                                               std::chrono::milliseconds limit,
                                               const char* limit_name) {
        for (;;) {
            tls_link::step step;
            try {
                step = attempt();
            } catch (...) {
                deadline_.disarm();
                broken();
                throw;
            }
            if (step == tls_link::step::done || step == tls_link::step::closed) {
                deadline_.disarm();
                co_return step;
            }
            if (auto ec = co_await wait_for(step)) {
                deadline_.disarm();
                broken();
                fail(where, operation, ec, deadline_, limit, limit_name);
            }
        }
    }

    // The TLS half of receive(), under the deadline it armed.
    asio::awaitable<std::size_t> tls_receive(char* data, std::size_t size,
                                             std::chrono::milliseconds limit) {
        const std::string where = describe();
        std::size_t n = 0;
        const auto step = co_await until_done(
            [&] {
                n = 0;
                return tls_.read(data, size, n, where);
            },
            where, "read", limit, "io_timeout_ms");
        if (step == tls_link::step::closed) broken();
        co_return n;
    }

    // The TLS half of write(), under the deadline it armed.
    asio::awaitable<void> tls_write(std::string_view bytes, std::chrono::milliseconds limit) {
        const std::string where = describe();
        std::size_t n = 0;
        co_await until_done([&] { return tls_.write(bytes.data(), bytes.size(), n, where); }, where,
                            "write", limit, "io_timeout_ms");
    }

    // What arrives, at most `size` bytes; 0 at end of stream.
    asio::awaitable<std::size_t> receive(char* data, std::size_t size) {
        check_open();
        const auto limit = pools_.settings().io_timeout;
        deadline_.arm(limit, [this] { cancel_socket(); });
        before_suspend();
        if (tls_) co_return co_await tls_receive(data, size, limit);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(data, size), as_tuple);
        deadline_.disarm();
        if (ec == asio::error::eof) {
            broken();
            co_return 0;
        }
        if (ec) {
            broken();
            fail(describe(), "read", ec, deadline_, limit, "io_timeout_ms");
        }
        co_return n;
    }

    outbound_pools& pools_;
    std::size_t thread_;  ///< the serving thread it was opened on
    std::string key_;
    std::string peer_;
    tcp::socket socket_;
    tls_link tls_;  ///< empty for plain TCP
    deadline deadline_;
    bool reusable_ = false;
    bool failed_ = false;
};

}  // namespace

outbound_pools::outbound_pools(std::size_t threads, outbound_settings settings, std::string owner)
    : settings_{settings},
      owner_{std::move(owner)},
      tls_contexts_{settings_.files_relative_to},
      pools_(threads) {}

asio::awaitable<std::unique_ptr<stream>> outbound_pools::connect(std::string host_name,
                                                                 std::uint16_t port,
                                                                 tls_options tls) {
    const auto index = host::serving_thread_index();
    if (index < 0) {
        throw std::logic_error("connect() must be called from a handler or a background task");
    }
    const auto thread = static_cast<std::size_t>(index);
    std::string peer = host_name + ":" + std::to_string(port);
    std::string key = tls.enabled ? peer + "\n" + tls_contexts_.pool_key(tls) : peer;
    auto& idle = pools_[thread][key];
    while (!idle.empty()) {
        idle_connection pooled = std::move(idle.front());
        idle.pop_front();
        boost::system::error_code ec;
        if (pooled.tls) {
            // The socket stays non-blocking under TLS; what arrived meanwhile (session
            // tickets) is consumed, a close or stray data refuses it.
            if (pooled.tls.still_usable()) {
                co_return std::make_unique<stream_impl>(*this, thread, std::move(key),
                                                        std::move(peer), std::move(pooled));
            }
            continue;
        }
        // A pooled connection the peer has closed meanwhile is readable (EOF): skip it.
        pooled.socket.non_blocking(true, ec);
        char probe;
        const auto n =
            pooled.socket.receive(asio::buffer(&probe, 1), tcp::socket::message_peek, ec);
        if (n == 0 && ec == asio::error::would_block) {
            pooled.socket.non_blocking(false, ec);
            co_return std::make_unique<stream_impl>(*this, thread, std::move(key), std::move(peer),
                                                    std::move(pooled));
        }
    }

    const auto ex = co_await asio::this_coro::executor;
    const std::string where = "outbound " + std::string{tls.enabled ? "TLS " : ""} +
                              "connection to " + peer + " (plugin " + owner_ + ")";
    deadline d{ex};
    tcp::resolver resolver{ex};
    d.arm(settings_.connect_timeout, [&resolver] { resolver.cancel(); });
    before_suspend();
    auto [rec, endpoints] =
        co_await resolver.async_resolve(host_name, std::to_string(port), as_tuple);
    d.disarm();
    if (rec) fail(where, "resolve", rec, d, settings_.connect_timeout, "connect_timeout_ms");
    tcp::socket socket{ex};
    d.arm(settings_.connect_timeout, [&socket] {
        boost::system::error_code ignored;
        socket.close(ignored);
    });
    auto [cec, at] = co_await asio::async_connect(socket, endpoints, as_tuple);
    d.disarm();
    if (cec) fail(where, "connect", cec, d, settings_.connect_timeout, "connect_timeout_ms");
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay{true}, ignored);
    if (!tls.enabled) {
        co_return std::make_unique<stream_impl>(*this, thread, std::move(key), std::move(peer),
                                                idle_connection{std::move(socket), {}});
    }
    socket.non_blocking(true, ignored);
    const int fd = socket.native_handle();
    tls_link link = tls_contexts_.open(fd, tls, host_name, where);
    auto s = std::make_unique<stream_impl>(*this, thread, std::move(key), std::move(peer),
                                           idle_connection{std::move(socket), std::move(link)});
    co_await s->handshake(where);
    co_return s;
}

void outbound_pools::give_back(std::size_t thread, const std::string& key,
                               idle_connection connection) noexcept {
    if (retired_.load(std::memory_order_acquire)) return;  // closed as `connection` goes
    try {
        auto& idle = pools_[thread][key];
        if (idle.size() < settings_.max_idle) idle.push_back(std::move(connection));
    } catch (...) {
        // Out of memory: the connection is simply closed.
    }
}

void outbound_pools::close_all() noexcept {
    retired_.store(true, std::memory_order_release);
    for (auto& p : pools_) p.clear();
}

}  // namespace plugd
