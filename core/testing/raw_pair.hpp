// raw_pair: a connected pair of sockets in this process, one end served by a plugin's
// serve() on a worker thread, the other the test's blocking client.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <plugd/connection.hpp>

namespace plugd::testing {

/// A Unix socket pair: no port, no network, the same byte stream a TCP client gives.
/// The client side's calls block, each at most `limit`, and throw std::runtime_error
/// saying what they waited for.
class raw_pair {
  public:
    raw_pair();
    ~raw_pair();
    raw_pair(const raw_pair&) = delete;
    raw_pair& operator=(const raw_pair&) = delete;

    /// The plugin's end, as the plugd::connection serve() gets; once only. Its I/O runs
    /// on `io`, the thread that must call it, which is serving thread `board` of the host
    /// (its topics' board).
    std::unique_ptr<connection> serving_end(boost::asio::io_context& io, std::string listener,
                                            std::size_t board);

    void client_write(std::string_view bytes, std::chrono::milliseconds limit);
    std::string client_read_until(std::string_view delimiter, std::chrono::milliseconds limit);
    std::string client_read_exactly(std::size_t size, std::chrono::milliseconds limit);
    std::string client_read_to_end(std::chrono::milliseconds limit);
    /// Ends the client's side: the plugin's next read returns 0.
    void client_shutdown() noexcept;

  private:
    // Reads what arrives within `limit` into buffered_; false at end of input.
    bool read_more(std::chrono::milliseconds limit, std::string_view waiting_for);

    int client_fd_ = -1;
    int serving_fd_ = -1;
    std::string buffered_;
};

}  // namespace plugd::testing
