// line_client: the tests' blocking client of a plugd listener, and HTTP on top of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace plugd::test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

/// A blocking client with deadlines on every read: over loopback TCP to a plugd process,
/// or over one end of a socket pair served inside the test (serving_fixture.hpp).
class line_client {
  public:
    /// Connects to 127.0.0.1:`port`; with `receive_buffer` (bytes), a receive buffer that
    /// small (SO_RCVBUF), so a client that never reads fills up soon.
    explicit line_client(std::uint16_t port, int receive_buffer = 0);
    /// Takes over `connected_fd`, a connected stream socket, and closes it when destroyed.
    static line_client adopt(int connected_fd) noexcept;
    ~line_client();
    line_client(line_client&& other) noexcept;
    line_client& operator=(line_client&&) = delete;
    int fd() const { return fd_; }

    void send(const std::string& bytes);
    /// What has arrived: the bytes buffered, or else what the next read returns; nullopt on
    /// EOF, error or deadline. Says how the server batched its writes.
    std::optional<std::string> read_available(milliseconds timeout = 5s);
    /// Reads up to and without the next '\n'; nullopt on EOF, error or deadline.
    std::optional<std::string> read_line(milliseconds timeout = 5s);
    /// Reads until the server closes; what arrived before (nullopt at the deadline).
    std::optional<std::string> read_to_eof(milliseconds timeout = 5s);
    /// Reads exactly `n` bytes; nullopt on EOF, error or deadline.
    std::optional<std::string> read_exactly(std::size_t n, milliseconds timeout = 5s);
    /// Shuts down the sending side (the server sees EOF).
    void shutdown_send();
    /// How long until the server has closed the connection for good, not just stopped
    /// sending (a lingering close still reads): keeps sending a byte every 20 ms until a
    /// send fails or the socket reports an error or hang-up. nullopt at the deadline.
    std::optional<milliseconds> wait_closed(milliseconds timeout);

  private:
    line_client() noexcept = default;
    bool fill(std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
    std::string buffered_;
    bool eof_ = false;
};

struct http_response {
    std::string version;  ///< "HTTP/1.1"
    int status = 0;
    std::map<std::string, std::string> headers;  ///< names in lower case
    std::string body;
};

/// One response (head and Content-Length body) from `c`; nullopt if none came whole.
std::optional<http_response> read_response(line_client& c, milliseconds timeout = 5s);

/// `method target` on a new connection to `port` (with `body`, and `Connection: close`);
/// nullopt if no whole response came.
std::optional<http_response> http_request(std::uint16_t port, const std::string& method,
                                          const std::string& target, const std::string& body = "",
                                          milliseconds timeout = 5s);

/// Sends `line` on a new connection to `port` and returns the reply line, or
/// "<no reply>" when none came within `timeout`.
std::string ask(std::uint16_t port, const std::string& line, milliseconds timeout = 5s);

}  // namespace plugd::test
