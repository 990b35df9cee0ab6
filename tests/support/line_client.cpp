// line_client: a socket read with poll(2) deadlines, so no test can hang on a server.
#include "line_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace plugd::test {
namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

int remaining_ms(clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

line_client::line_client(std::uint16_t port, int receive_buffer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("socket");
    if (receive_buffer > 0)
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        ::close(fd_);
        errno = e;
        fail("connect to 127.0.0.1:" + std::to_string(port));
    }
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

line_client line_client::adopt(int connected_fd) noexcept {
    line_client c;
    c.fd_ = connected_fd;
    return c;
}

line_client::~line_client() {
    if (fd_ >= 0) ::close(fd_);
}

line_client::line_client(line_client&& other) noexcept
    : fd_{std::exchange(other.fd_, -1)}, buffered_{std::move(other.buffered_)}, eof_{other.eof_} {}

void line_client::send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("send");
        sent += static_cast<std::size_t>(n);
    }
}

bool line_client::fill(clock::time_point deadline) {
    if (eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
        eof_ = true;
        return false;
    }
    buffered_.append(buf, static_cast<std::size_t>(n));
    return true;
}

std::optional<std::string> line_client::read_available(milliseconds timeout) {
    if (buffered_.empty() && !fill(clock::now() + timeout)) return std::nullopt;
    return std::exchange(buffered_, {});
}

std::optional<std::string> line_client::read_line(milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    for (;;) {
        if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
            std::string line = buffered_.substr(0, nl);
            buffered_.erase(0, nl + 1);
            return line;
        }
        if (!fill(deadline)) return std::nullopt;
    }
}

std::optional<std::string> line_client::read_to_eof(milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (!eof_) {
        if (!fill(deadline) && !eof_) return std::nullopt;
    }
    return std::exchange(buffered_, {});
}

std::optional<std::string> line_client::read_exactly(std::size_t n, milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (buffered_.size() < n) {
        if (!fill(deadline)) return std::nullopt;
    }
    std::string bytes = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return bytes;
}

void line_client::shutdown_send() {
    ::shutdown(fd_, SHUT_WR);
}

std::optional<http_response> read_response(line_client& c, milliseconds timeout) {
    const auto strip = [](std::string s) {
        if (!s.empty() && s.back() == '\r') s.pop_back();
        return s;
    };
    const auto lower = [](std::string s) {
        for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return s;
    };
    auto status = c.read_line(timeout);
    if (!status) return std::nullopt;
    http_response r;
    const auto line = strip(*status);
    r.version = line.substr(0, line.find(' '));
    r.status = std::stoi(line.substr(line.find(' ') + 1, 3));
    for (;;) {
        auto field = c.read_line(timeout);
        if (!field) return std::nullopt;
        const auto f = strip(*field);
        if (f.empty()) break;
        const auto colon = f.find(':');
        r.headers[lower(f.substr(0, colon))] = f.substr(f.find_first_not_of(' ', colon + 1));
    }
    const auto length = r.headers.find("content-length");
    if (length != r.headers.end()) {
        auto body = c.read_exactly(std::stoul(length->second), timeout);
        if (!body) return std::nullopt;
        r.body = *body;
    }
    return r;
}

std::optional<http_response> http_request(std::uint16_t port, const std::string& method,
                                          const std::string& target, const std::string& body,
                                          milliseconds timeout) {
    line_client c{port};
    c.send(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    return read_response(c, timeout);
}

std::string ask(std::uint16_t port, const std::string& line, milliseconds timeout) {
    line_client c{port};
    c.send(line + "\n");
    return c.read_line(timeout).value_or("<no reply>");
}

std::optional<milliseconds> line_client::wait_closed(milliseconds timeout) {
    const auto start = clock::now();
    const auto elapsed = [&] {
        return std::chrono::duration_cast<milliseconds>(clock::now() - start);
    };
    while (clock::now() - start < timeout) {
        if (::send(fd_, "x", 1, MSG_NOSIGNAL) < 0 && errno != EINTR && errno != EAGAIN) {
            return elapsed();
        }
        pollfd p{fd_, 0, 0};  // POLLERR and POLLHUP are reported without asking
        if (::poll(&p, 1, 20) > 0 && (p.revents & (POLLERR | POLLHUP))) return elapsed();
    }
    return std::nullopt;
}

}  // namespace plugd::test
