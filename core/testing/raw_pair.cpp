// raw_pair: socketpair(2), the plugin's end run by Asio, the test's end by poll(2).
#include "testing/raw_pair.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "serving/buffered_connection.hpp"

namespace plugd::testing {
namespace asio = boost::asio;
namespace {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// The listener limits a harness connection subscribes under: plugd's defaults.
const limits& default_limits() noexcept {
    static const limits defaults{};
    return defaults;
}

// The plugin's end. No limits are enforced here: the harness tests the protocol, plugd's
// own tests the limits.
class paired_connection final : public buffered_connection {
  public:
    paired_connection(asio::io_context& io, int fd, std::string listener, std::size_t board)
        : buffered_connection{board, default_limits()},
          io_{io},
          socket_{io, asio::local::stream_protocol{}, fd},
          listener_{std::move(listener)} {
        socket_.non_blocking(true);  // reads are tried at once, waited for only when empty
    }

    task<void> write(std::string_view bytes) override {
        check_open();
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(bytes), as_tuple);
        if (ec) throw boost::system::system_error(ec, "writing to the test client");
    }
    void recycle() noexcept override {}
    void close() noexcept override {
        mark_closed();
        boost::system::error_code ignored;
        socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    }
    std::string_view peer() const noexcept override { return "127.0.0.1:40000"; }
    std::string_view listener() const noexcept override { return listener_; }

  protected:
    task<bool> fill(std::string& buffer, bool mid_message) override {
        for (;;) {
            // (Awaited outside the switch: GCC 12 miscompiles a co_await in its condition.)
            const arrival got = co_await receive(buffer, mid_message, false);
            switch (got) {
                case arrival::bytes:
                    co_return true;
                case arrival::woken:
                    break;
                case arrival::client_closed:
                case arrival::server_closed:
                    co_return false;
            }
        }
    }
    task<arrival> receive(std::string& buffer, bool, bool wakeable) override {
        if (!events_) events_ = events_ptr{new client_events{io_}};
        for (;;) {
            check_open();
            if (events_->maybe_readable()) {
                const std::size_t before = buffer.size();
                buffer.resize(before + 16384);
                boost::system::error_code ec;
                const std::size_t n =
                    socket_.read_some(asio::buffer(buffer.data() + before, 16384), ec);
                buffer.resize(before + n);
                if (!ec) co_return arrival::bytes;
                if (ec == asio::error::eof || ec == asio::error::connection_reset)
                    co_return arrival::client_closed;
                if (ec != asio::error::would_block)
                    throw boost::system::system_error(ec, "reading from the test client");
                events_->watch([this](auto readable) {
                    socket_.async_wait(asio::socket_base::wait_read, std::move(readable));
                });
            }
            waiting = wakeable;
            auto [ec] = co_await events_->async_wait(as_tuple);
            waiting = false;
            if (ec) throw boost::system::system_error(ec, "reading from the test client");
            if (events_->take_woken() && wakeable) co_return arrival::woken;
        }
    }
    std::size_t max_read_bytes() const noexcept override { return 65536; }  // the default

  private:
    asio::io_context& io_;
    asio::local::stream_protocol::socket socket_;
    std::string listener_;
};

int wait_for(int fd, short events, std::chrono::milliseconds limit) {
    pollfd p{fd, events, 0};
    int r;
    do {
        r = ::poll(&p, 1, static_cast<int>(limit.count()));
    } while (r < 0 && errno == EINTR);
    return r;
}

}  // namespace

raw_pair::raw_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        throw std::runtime_error(std::string{"plugd::testing: socketpair: "} +
                                 std::strerror(errno));
    }
    client_fd_ = fds[0];
    serving_fd_ = fds[1];
}

raw_pair::~raw_pair() {
    if (client_fd_ >= 0) ::close(client_fd_);
    if (serving_fd_ >= 0) ::close(serving_fd_);
}

std::unique_ptr<connection> raw_pair::serving_end(asio::io_context& io, std::string listener,
                                                  std::size_t board) {
    auto end = std::make_unique<paired_connection>(io, serving_fd_, std::move(listener), board);
    serving_fd_ = -1;  // the socket owns it now
    return end;
}

void raw_pair::client_write(std::string_view bytes, std::chrono::milliseconds limit) {
    while (!bytes.empty()) {
        if (wait_for(client_fd_, POLLOUT, limit) <= 0) {
            throw std::runtime_error("plugd::testing: the plugin read nothing for " +
                                     std::to_string(limit.count()) + " ms (wait_limit)");
        }
        const ssize_t n =
            ::send(client_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw std::runtime_error(std::string{"plugd::testing: write: "} + std::strerror(errno) +
                                     " (the plugin closed the connection?)");
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool raw_pair::read_more(std::chrono::milliseconds limit, std::string_view waiting_for) {
    if (wait_for(client_fd_, POLLIN, limit) <= 0) {
        throw std::runtime_error("plugd::testing: no reply within " +
                                 std::to_string(limit.count()) +
                                 " ms (wait_limit) while waiting for " + std::string{waiting_for} +
                                 "; received so far: \"" + buffered_ + "\"");
    }
    char chunk[16384];
    ssize_t n;
    do {
        n = ::recv(client_fd_, chunk, sizeof chunk, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != ECONNRESET) {
        throw std::runtime_error(std::string{"plugd::testing: read: "} + std::strerror(errno));
    }
    if (n <= 0) return false;
    buffered_.append(chunk, static_cast<std::size_t>(n));
    return true;
}

std::string raw_pair::client_read_until(std::string_view delimiter,
                                        std::chrono::milliseconds limit) {
    for (;;) {
        if (const auto at = buffered_.find(delimiter); at != std::string::npos) {
            std::string line = buffered_.substr(0, at + delimiter.size());
            buffered_.erase(0, line.size());
            return line;
        }
        if (!read_more(limit, "a delimiter")) {
            throw std::runtime_error(
                "plugd::testing: the plugin closed the connection before "
                "the delimiter; received: \"" +
                buffered_ + "\"");
        }
    }
}

std::string raw_pair::client_read_exactly(std::size_t size, std::chrono::milliseconds limit) {
    while (buffered_.size() < size) {
        if (!read_more(limit, std::to_string(size) + " bytes")) {
            throw std::runtime_error("plugd::testing: the plugin closed the connection after " +
                                     std::to_string(buffered_.size()) + " of " +
                                     std::to_string(size) + " bytes");
        }
    }
    std::string bytes = buffered_.substr(0, size);
    buffered_.erase(0, size);
    return bytes;
}

std::string raw_pair::client_read_to_end(std::chrono::milliseconds limit) {
    while (read_more(limit, "the end of the connection")) {
    }
    return std::exchange(buffered_, {});
}

void raw_pair::client_shutdown() noexcept {
    ::shutdown(client_fd_, SHUT_WR);
}

}  // namespace plugd::testing
