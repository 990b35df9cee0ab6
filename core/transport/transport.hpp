// transport: the byte stream under a client connection. Everything the serving path does to
// the peer's bytes goes through it: reading what has arrived without waiting, waiting for
// readability without a buffer (parking), writing, half-close and close. Plain TCP today;
// TLS will be a second transport with the same members, so a connection over it parks,
// times out and drains exactly as a TCP one does.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <span>
#include <string>

namespace plugd {

/// "ip:port", IPv6 in brackets: how logs and requests show addresses.
std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint);

class tcp_transport {
  public:
    using socket_type = boost::asio::ip::tcp::socket;

    explicit tcp_transport(socket_type socket) noexcept : socket_{std::move(socket)} {}

    /// Sets the socket up for serving: no Nagle delay (replies are written whole), and
    /// non-blocking, so reads are attempted at once and waited for only when nothing came.
    void prepare() noexcept;
    /// The peer as "ip:port" ("unknown" once it is gone).
    std::string peer() const;

    /// Reads what has arrived into `into`, never waiting: `would_block` when nothing has,
    /// `eof` at the end of input.
    std::size_t read_now(std::span<char> into, boost::system::error_code& ec) noexcept {
        return socket_.read_some(boost::asio::buffer(into.data(), into.size()), ec);
    }
    /// Whether a read would not wait (bytes, end of input or an error are there), taking
    /// nothing. Readiness is edge-triggered: bytes that came while nothing waited for them
    /// raise no new event, so a connection looks before it parks.
    bool readable_now() noexcept;
    /// Waits until a read would not wait, holding no buffer: how an idle connection parks.
    template <class Token>
    auto async_wait_readable(Token&& token) {
        return socket_.async_wait(socket_type::wait_read, std::forward<Token>(token));
    }
    /// Writes all of `bytes`.
    template <class Token>
    auto async_write(boost::asio::const_buffer bytes, Token&& token) {
        return boost::asio::async_write(socket_, bytes, std::forward<Token>(token));
    }
    /// Writes what the socket takes at once, never waiting.
    std::size_t write_now(boost::asio::const_buffer bytes, boost::system::error_code& ec) noexcept {
        return socket_.write_some(bytes, ec);
    }
    /// Reads and discards what arrives, for a lingering close.
    template <class Token>
    auto async_discard(std::span<char> scratch, Token&& token) {
        return socket_.async_read_some(boost::asio::buffer(scratch.data(), scratch.size()),
                                       std::forward<Token>(token));
    }

    /// Ends whatever waits on the transport (a wait, a read, a write) with
    /// operation_aborted.
    void cancel() noexcept;
    /// Sends the end of output; input can still be read (a lingering close).
    void shutdown_send() noexcept;
    /// Ends both directions: the peer sees the end of input, reads here see it too.
    void shutdown() noexcept;
    /// Shuts both directions and closes. Pending operations end with operation_aborted.
    void close() noexcept;

  private:
    socket_type socket_;
};

/// The transport under every client connection (one type: the connection's size is what
/// plugd's memory per connection is made of).
using transport = tcp_transport;

}  // namespace plugd
