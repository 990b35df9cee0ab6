// redis_server: spawned with posix_spawn, ready when it answers PING.
#include "redis_server.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "line_client.hpp"

extern char** environ;

namespace plugd::test {

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

redis_server::redis_server(const char* binary, const std::filesystem::path& dir,
                           std::vector<std::string> extra)
    : binary_{binary}, dir_{dir}, extra_{std::move(extra)}, port_{free_port()} {
    start();
}

redis_server::~redis_server() {
    kill();
}

void redis_server::start() {
    std::vector<std::string> args{binary_,
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_.string(),
                                  "--logfile",
                                  (dir_ / "redis.log").string()};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid_, binary_.c_str(), nullptr, nullptr, argv.data(), environ) == 0);
    // Ready once it answers PING (bounded). With a password it answers NOAUTH: up, too.
    for (const auto deadline = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
        try {
            const std::string reply = command("PING");
            if (reply == "+PONG" || reply.starts_with("-NOAUTH")) return;
        } catch (const std::exception&) {
        }
    }
    FAIL("redis-server did not answer PING on port " << port_);
}

void redis_server::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

void redis_server::restart() {
    kill();
    start();
}

std::string redis_server::command(const std::string& line) const {
    line_client c{port_};
    c.send(line + "\r\n");
    auto reply = c.read_line(2s).value_or("");
    if (!reply.empty() && reply.back() == '\r') reply.pop_back();
    return reply;
}

long redis_server::connections_received() const {
    line_client c{port_};
    c.send("INFO stats\r\nQUIT\r\n");
    const auto text = c.read_to_eof(2s).value_or("");
    const std::string field = "total_connections_received:";
    const auto at = text.find(field);
    REQUIRE(at != std::string::npos);
    return std::stol(text.substr(at + field.size()));
}

}  // namespace plugd::test
