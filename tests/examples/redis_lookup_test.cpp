// examples/redis-lookup, built against the installed SDK, against Debian's redis-server
// started here on a free loopback port.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "plugd_process.hpp"
#include "skip_test.hpp"

extern char** environ;

using namespace plugd::test;

namespace {

const char* redis_binary() {
    for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
        if (::access(path, X_OK) == 0) return path;
    }
    return nullptr;
}

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// redis-server on 127.0.0.1:port, without persistence; stopped by the destructor.
class redis_server {
  public:
    redis_server(const char* binary, const std::filesystem::path& dir) : port_{free_port()} {
        std::vector<std::string> args{binary,
                                      "--port",
                                      std::to_string(port_),
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--dir",
                                      dir.string(),
                                      "--logfile",
                                      (dir / "redis.log").string()};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(::posix_spawn(&pid_, binary, nullptr, nullptr, argv.data(), environ) == 0);
        // Ready once it answers PING (bounded).
        for (const auto deadline = std::chrono::steady_clock::now() + 10s;
             std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
            try {
                if (command("PING") == "+PONG") return;
            } catch (const std::exception&) {
            }
        }
        FAIL("redis-server did not answer PING on port " << port_);
    }
    ~redis_server() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::uint16_t port() const { return port_; }
    /// An inline command; the first reply line without its \r.
    std::string command(const std::string& line) const {
        line_client c{port_};
        c.send(line + "\r\n");
        auto reply = c.read_line(2s).value_or("");
        if (!reply.empty() && reply.back() == '\r') reply.pop_back();
        return reply;
    }
    /// How many connections Redis has accepted so far (INFO stats), this one included.
    long connections_received() const {
        line_client c{port_};
        c.send("INFO stats\r\nQUIT\r\n");
        const auto text = c.read_to_eof(2s).value_or("");
        const std::string field = "total_connections_received:";
        const auto at = text.find(field);
        REQUIRE(at != std::string::npos);
        return std::stol(text.substr(at + field.size()));
    }

  private:
    std::uint16_t port_;
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("redis-lookup answers Redis values over pooled outbound connections") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir tmp;
    redis_server redis{binary, tmp.path()};
    REQUIRE(redis.command("SET world Hello,world") == "+OK");
    REQUIRE(redis.command("SET empty \"\"") == "+OK");
    const long before = redis.connections_received();
    const auto dir = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "redis-lookup";
    plugd_process p{
        {"-c", tmp.write("server.json",
                         one_listener_config(dir, "redis_lookup",
                                             R"({ "port": )" + std::to_string(redis.port()) + " }"))
                   .string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1"));
    line_client c{port};
    c.send("world\nmissing\nempty\n");
    CHECK(c.read_line() == "Hello,world");
    CHECK(c.read_line() == "NIL");
    CHECK(c.read_line() == "");
    for (int i = 0; i < 100; ++i) {
        c.send("world\n");
        REQUIRE(c.read_line() == "Hello,world");
    }
    // 103 lookups from one client connection, so on one worker thread: with the pool,
    // one connection to Redis served them all (the other new one is this count's own).
    const long opened = redis.connections_received() - before - 1;
    MESSAGE("connections to Redis for 103 lookups: " << opened);
    CHECK(opened == 1);
}
