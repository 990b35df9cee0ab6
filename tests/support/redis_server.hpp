// redis_server: Debian's redis-server, started by a test on a free loopback port.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace plugd::test {

/// The redis-server binary, or null when it is not installed.
const char* redis_binary();

/// A loopback TCP port nobody listens on right now.
std::uint16_t free_port();

/// redis-server on 127.0.0.1:port, without persistence, logging to `dir`/redis.log;
/// ready (it answers PING) once constructed; killed by the destructor. `extra`: more
/// arguments (a TLS port, a password).
class redis_server {
  public:
    redis_server(const char* binary, const std::filesystem::path& dir,
                 std::vector<std::string> extra = {});
    ~redis_server();
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    std::uint16_t port() const { return port_; }
    /// An inline command; the first reply line without its \r.
    std::string command(const std::string& line) const;
    /// How many connections Redis has accepted so far (INFO stats), this one included.
    long connections_received() const;
    /// Kills it (SIGKILL: its clients see their connections reset or closed).
    void kill();
    /// Starts it again on the same port; ready once it returns.
    void restart();

  private:
    void start();

    std::string binary_;
    std::filesystem::path dir_;
    std::vector<std::string> extra_;
    std::uint16_t port_;
    pid_t pid_ = -1;
};

}  // namespace plugd::test
