// transport: the byte stream under a client connection. Everything the serving path does to
// the peer's bytes goes through it: reading what has arrived without waiting, waiting for
// readability without a buffer (parking), writing, half-close and close. Plain TCP, or
// TLS over the same socket: OpenSSL runs directly on the non-blocking socket (no
// Asio ssl::stream, whose per-connection buffers an idle connection would keep), and its
// "want read"/"want write" map onto the same waits, so a TLS connection parks, times out
// and drains exactly as a TCP one does. Each member checks one pointer: the plain path
// stays inline, and only TLS connections go to tls_session.cpp (the one file here that
// includes OpenSSL).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "transport/next_bytes_wait.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace plugd {

/// "ip:port", IPv6 in brackets: how logs and requests show addresses.
std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint);

/// One TLS connection's OpenSSL state (transport/tls_session.cpp).
struct tls_session;

/// What one step of a TLS handshake came to.
enum class handshake_step : std::uint8_t {
    done,        ///< established: serve
    want_read,   ///< wait until readable, then step again
    want_write,  ///< wait until writable, then step again
    plaintext,   ///< the client's first byte is not a TLS handshake record (plain HTTP?)
    failed,      ///< the client left, or the handshake failed: close
};

/// The outcome of one TLS read or write attempt, without OpenSSL's types.
struct tls_io {
    std::size_t bytes = 0;
    bool want_read = false;   ///< OpenSSL needs the socket readable to go on
    bool want_write = false;  ///< ... or writable
};

class client_transport {
  public:
    /// Bound to its shard's io_context by type, not through any_io_executor: the socket and
    /// every operation on it are 40 bytes smaller, which every connection pays while idle.
    using socket_type = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                         boost::asio::io_context::executor_type>;

    explicit client_transport(socket_type socket) noexcept : socket_{std::move(socket)} {}
    ~client_transport();
    client_transport(client_transport&& other) noexcept
        : socket_{std::move(other.socket_)}, tls_{std::exchange(other.tls_, nullptr)} {}
    client_transport& operator=(client_transport&&) = delete;

    /// Makes this a TLS connection with `context` (its handshake still to run: handshake()).
    /// False when OpenSSL could not make the connection's state (out of memory).
    bool use_tls(ssl_ctx_st* context) noexcept;
    bool is_tls() const noexcept { return tls_ != nullptr; }
    /// One step of the server's handshake; the caller waits as it says and steps again.
    handshake_step handshake() noexcept;
    /// After the handshake: whether it resumed a session, and the verified client
    /// certificate's subject (RFC 2253; empty without one, and on plain TCP).
    bool resumed() const noexcept;
    std::string_view client_subject() const noexcept {
        return tls_ ? tls_client_subject() : std::string_view{};
    }
    /// After the handshake: the protocol version ("TLSv1.3") and cipher suite
    /// ("TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256") as OpenSSL names them;
    /// empty on plain TCP. OpenSSL's own static strings: reading them allocates nothing.
    std::string_view tls_version() const noexcept;
    std::string_view tls_cipher() const noexcept;
    /// Why the last handshake failed, for a debug line.
    std::string handshake_error() const;

    /// Sets the socket up for serving: no Nagle delay (replies are written whole), and
    /// non-blocking, so reads are attempted at once and waited for only when nothing came.
    void prepare() noexcept;
    /// The peer as "ip:port" ("unknown" once it is gone).
    std::string peer() const;

    /// Reads what has arrived into `into`, never waiting: `would_block` when nothing has,
    /// `eof` at the end of input.
    std::size_t read_now(std::span<char> into, boost::system::error_code& ec) noexcept {
        if (tls_) return tls_read(into, ec);
        return socket_.read_some(boost::asio::buffer(into.data(), into.size()), ec);
    }
    /// Whether a read would not wait (bytes, end of input or an error are there), taking
    /// nothing. Readiness is edge-triggered: bytes that came while nothing waited for them
    /// raise no new event, so a connection looks before it parks.
    bool readable_now() noexcept;
    /// Waits until a read would not wait, holding no buffer: how an idle connection parks,
    /// and how a busy one waits for its next request. Only right after a read (read_now) or
    /// a look (readable_now) found nothing, before the event loop turns: it waits without a
    /// system call to re-arm the socket (transport/next_bytes_wait.hpp). `source` is the
    /// reactor of the socket's io_context (its shard's). (Over TLS a read may need the
    /// socket writable first: then it waits for that.)
    template <class Token>
    auto async_wait_next_bytes(const readiness_source& source, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this, &source](auto handler) {
                if (tls_ && tls_read_wants_write())
                    socket_.async_wait(socket_type::wait_write, std::move(handler));
                else
                    plugd::async_wait_next_bytes(source, socket_, std::move(handler));
            },
            token);
    }
    /// Waits until writable (or readable): what a handshake step asked for.
    template <class Token>
    auto async_wait(bool writable, Token&& token) {
        return socket_.async_wait(writable ? socket_type::wait_write : socket_type::wait_read,
                                  std::forward<Token>(token));
    }
    /// Writes all of `bytes`.
    template <class Token>
    auto async_write(boost::asio::const_buffer bytes, Token&& token) {
        // One initiation for both, so that the result has one type whatever the token (a
        // deferred operation's type names its initiation).
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this, bytes](auto handler) {
                if (tls_) {
                    boost::asio::async_compose<decltype(handler),
                                               void(boost::system::error_code, std::size_t)>(
                        tls_write_op{*this, bytes}, handler, socket_);  // (moved from)
                } else {
                    boost::asio::async_write(socket_, bytes, std::move(handler));
                }
            },
            token);
    }
    /// Writes what the socket takes at once, never waiting.
    std::size_t write_now(boost::asio::const_buffer bytes, boost::system::error_code& ec) noexcept {
        if (tls_) return tls_write_now(bytes, ec);
        return socket_.write_some(bytes, ec);
    }
    /// write_now, for a writer that waits for the rest: true when the socket took only part
    /// of `bytes` (`written` of them) and the rest is to be awaited (async_write); false when
    /// it took them all (`ec` cleared) or the write failed (`ec` says why).
    bool write_now_or_wait(std::string_view bytes, std::size_t& written,
                           boost::system::error_code& ec) noexcept {
        written = write_now(boost::asio::buffer(bytes), ec);
        if (written == bytes.size()) {
            ec = {};
            return false;
        }
        return !ec || ec == boost::asio::error::would_block;
    }
    /// The socket's bytes as they are, bypassing TLS: for answering a client that sent
    /// plaintext to a TLS port. Never wait.
    std::size_t read_raw(std::span<char> into, boost::system::error_code& ec) noexcept {
        return socket_.read_some(boost::asio::buffer(into.data(), into.size()), ec);
    }
    std::size_t write_raw(boost::asio::const_buffer bytes, boost::system::error_code& ec) noexcept {
        return socket_.write_some(bytes, ec);
    }
    /// Reads and discards what arrives, for a lingering close (over TLS the records are
    /// discarded undecrypted: nobody reads them).
    template <class Token>
    auto async_discard(std::span<char> scratch, Token&& token) {
        return socket_.async_read_some(boost::asio::buffer(scratch.data(), scratch.size()),
                                       std::forward<Token>(token));
    }

    /// Ends whatever waits on the transport (a wait, a read, a write) with
    /// operation_aborted.
    void cancel() noexcept;
    /// Sends the end of output (over TLS, a close_notify first); input can still be read (a
    /// lingering close).
    void shutdown_send() noexcept;
    /// Ends both directions: the peer sees the end of input, reads here see it too.
    void shutdown() noexcept;
    /// Shuts both directions and closes. Pending operations end with operation_aborted.
    void close() noexcept;

  private:
    // Writes all of a buffer over TLS: SSL_write as far as it goes, then a wait for what
    // OpenSSL asks (writable, or during a key update readable), until done.
    struct tls_write_op {
        client_transport& t;
        boost::asio::const_buffer bytes;
        std::size_t written = 0;

        template <class Self>
        void operator()(Self& self, boost::system::error_code ec = {}) {
            while (!ec && written < bytes.size()) {
                const tls_io r = t.tls_write(
                    boost::asio::buffer(static_cast<const char*>(bytes.data()) + written,
                                        bytes.size() - written),
                    ec);
                written += r.bytes;
                if (ec) break;
                if (r.want_read || r.want_write) {
                    t.socket_.async_wait(
                        r.want_write ? socket_type::wait_write : socket_type::wait_read,
                        std::move(self));
                    return;
                }
            }
            self.complete(ec, written);
        }
    };

    std::size_t tls_read(std::span<char> into, boost::system::error_code& ec) noexcept;
    bool tls_read_wants_write() const noexcept;
    tls_io tls_write(boost::asio::const_buffer bytes, boost::system::error_code& ec) noexcept;
    std::size_t tls_write_now(boost::asio::const_buffer bytes,
                              boost::system::error_code& ec) noexcept;
    std::string_view tls_client_subject() const noexcept;
    bool tls_pending() const noexcept;
    void tls_shutdown() noexcept;
    void tls_free() noexcept;

    socket_type socket_;
    tls_session* tls_ = nullptr;  ///< null: plain TCP
};

/// The transport under every client connection (one type: the connection's size is what
/// plugd's memory per connection is made of).
using transport = client_transport;

}  // namespace plugd
