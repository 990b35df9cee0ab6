// redis_lookup's tests, through plugd's test harness (<plugd/testing.hpp>). The plugin's
// outbound connections are real: they reach a scripted Redis on a loopback port here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace {

// Answers RESP GET commands from one connection at a time: "greeting" is "hello", any other
// key is missing. Stops when destroyed.
class scripted_redis {
  public:
    scripted_redis() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 8) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        thread_ = std::thread{[this] {
            for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0; ::close(c)) {
                std::string in;
                char chunk[512];
                for (ssize_t n; (n = ::read(c, chunk, sizeof chunk)) > 0;) {
                    in.append(chunk, static_cast<std::size_t>(n));
                    // "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n": complete at its 5th line end.
                    std::size_t ends = 0, at = 0;
                    while (ends < 5 && (at = in.find("\r\n", at)) != std::string::npos) {
                        ++ends;
                        at += 2;
                    }
                    if (ends < 5) continue;
                    const auto key_start = in.rfind("\r\n", in.size() - 3) + 2;
                    const std::string key = in.substr(key_start, in.size() - 2 - key_start);
                    const std::string reply = key == "greeting" ? "$5\r\nhello\r\n" : "$-1\r\n";
                    if (::write(c, reply.data(), reply.size()) < 0) break;
                    in.clear();
                }
            }
        }};
    }
    ~scripted_redis() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    int port = 0;

  private:
    int fd_ = -1;
    std::thread thread_;
};

}  // namespace

TEST_CASE("redis_lookup answers a key's value, or NIL, over pooled connections") {
    scripted_redis redis;
    plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"port", redis.port}}}};
    CHECK(host.call("greeting") == "hello");
    CHECK(host.call("missing") == "NIL");
    CHECK(host.call("greeting") == "hello");
}

TEST_CASE("redis_lookup's failure to connect reaches the caller, naming the address") {
    // Nothing listens on port 1 of the loopback address (a privileged port).
    plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"port", 1}}}};
    CHECK_THROWS_WITH_AS(host.call("greeting"), doctest::Contains("127.0.0.1"), std::exception);
}
