// reload_probe: the reload benchmark's client: rewrites server.json with a new greeting
// prefix, sends plugd SIGHUP and times how long until a request gets the new reply.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::string_view usage =
    "usage: plugd_bench_reload_probe --port P --pid PID --config FILE --template FILE\n"
    "                                [--reloads N] [--interval-ms I] [--timeout-ms T]\n"
    "N times (default 20), I ms apart (default 100): writes FILE from the template with\n"
    "@PREFIX@ replaced by \"Hello-<k>, \", sends PID SIGHUP and sends \"world\" on one open\n"
    "connection to 127.0.0.1:P until the reply is \"Hello-<k>, world\". Prints one line per\n"
    "reload; exits 1 if a reply is neither the old nor the new one, if the new one has not\n"
    "come T ms (default 5000) after the signal, or if any I/O fails.\n";

constexpr std::string_view placeholder = "@PREFIX@";
constexpr std::string_view message = "world";  // every request's line

struct options {
    unsigned short port = 0;
    pid_t pid = 0;
    fs::path config, config_template;
    unsigned reloads = 20;
    std::chrono::milliseconds interval{100}, timeout{5000};
};

[[noreturn]] void fail_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// One connection, one request at a time, blocking with a deadline. Plain POSIX: the probe
// is strictly sequential, and poll() gives each read its deadline without an event loop.
class line_client {
  public:
    explicit line_client(unsigned short port) : fd_{::socket(AF_INET, SOCK_STREAM, 0)} {
        if (fd_ < 0) fail_errno("socket");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            const int saved = errno;
            ::close(fd_);
            errno = saved;
            fail_errno("connect to 127.0.0.1:" + std::to_string(port));
        }
        // Without it Nagle could hold a request back behind the previous one's ACK and add
        // up to 40 ms (delayed ACK) to a measured latency.
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    line_client(const line_client&) = delete;
    line_client& operator=(const line_client&) = delete;
    ~line_client() { ::close(fd_); }

    // Sends `line` and returns the reply line without its '\n'. Throws if the server closes
    // or the reply has not come by `deadline`.
    std::string ask(const std::string& line, clock_type::time_point deadline) {
        const std::string out = line + '\n';
        for (std::size_t sent = 0; sent < out.size();) {
            // MSG_NOSIGNAL: a server that closed must give an error here, not kill us by SIGPIPE.
            const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EINTR) fail_errno("send");
            if (n > 0) sent += static_cast<std::size_t>(n);
        }
        for (;;) {
            if (const auto nl = in_.find('\n'); nl != std::string::npos) {
                std::string reply = in_.substr(0, nl);
                in_.erase(0, nl + 1);
                return reply;
            }
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
            if (left.count() <= 0) throw std::runtime_error("no reply before the deadline");
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno != EINTR) fail_errno("poll");
            if (ready <= 0) continue;
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0) throw std::runtime_error("the server closed the connection");
            if (n < 0 && errno != EINTR) fail_errno("recv");
            if (n > 0) in_.append(buf, static_cast<std::size_t>(n));
        }
    }

  private:
    int fd_;
    std::string in_;  // bytes read past the last reply line
};

std::string read_file(const fs::path& path) {
    std::ifstream in{path, std::ios::binary};
    std::ostringstream content;
    content << in.rdbuf();
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return content.str();
}

// Written under another name and renamed over the old file, as the README says to change a
// running server's files: plugd never reads a half-written config.
void write_config(const fs::path& path, const std::string& config_template,
                  const std::string& prefix) {
    std::string text = config_template;
    for (auto at = text.find(placeholder); at != std::string::npos;
         at = text.find(placeholder, at + prefix.size())) {
        text.replace(at, placeholder.size(), prefix);
    }
    const fs::path next = path.string() + ".next";
    {
        std::ofstream out{next, std::ios::binary | std::ios::trunc};
        out << text;
        out.close();
        if (!out) throw std::runtime_error("cannot write " + next.string());
    }
    fs::rename(next, path);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) throw std::invalid_argument(std::string{arg} + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--port")
            o.port = static_cast<unsigned short>(std::stoul(value));
        else if (arg == "--pid")
            o.pid = static_cast<pid_t>(std::stol(value));
        else if (arg == "--config")
            o.config = value;
        else if (arg == "--template")
            o.config_template = value;
        else if (arg == "--reloads")
            o.reloads = std::stoul(value);
        else if (arg == "--interval-ms")
            o.interval = std::chrono::milliseconds{std::stoul(value)};
        else if (arg == "--timeout-ms")
            o.timeout = std::chrono::milliseconds{std::stoul(value)};
        else
            throw std::invalid_argument("unknown argument " + std::string{arg});
    }
    if (o.port == 0 || o.pid <= 0 || o.config.empty() || o.config_template.empty() ||
        o.reloads == 0 || o.timeout.count() == 0) {
        throw std::invalid_argument(
            "--port, --pid, --config and --template are required; --reloads and "
            "--timeout-ms must be more than 0");
    }
    return o;
}

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "plugd_bench_reload_probe: " << e.what() << "\n" << usage;
        return 2;
    }
    try {
        const std::string config_template = read_file(o.config_template);
        // Without the placeholder every reload would be a no-op that never answers anew.
        if (config_template.find(placeholder) == std::string::npos) {
            throw std::runtime_error(o.config_template.string() + " has no " +
                                     std::string{placeholder});
        }
        // One connection for every reload: requests on a connection opened before a reload
        // must get the new version too, and no connect() is part of a measured latency.
        line_client client{o.port};
        std::string current = client.ask(std::string{message}, clock_type::now() + o.timeout);
        for (unsigned k = 1; k <= o.reloads; ++k) {
            const std::string prefix = "Hello-" + std::to_string(k) + ", ";
            const std::string expected = prefix + std::string{message};
            write_config(o.config, config_template, prefix);
            const auto signalled = clock_type::now();
            if (::kill(o.pid, SIGHUP) != 0) fail_errno("kill -HUP " + std::to_string(o.pid));
            const auto deadline = signalled + o.timeout;
            // Back to back: each request waits for its reply, so this does not spin, and the
            // latency overstates the switch by at most one round trip.
            unsigned requests = 0;
            for (;;) {
                std::string reply;
                try {
                    reply = client.ask(std::string{message}, deadline);
                } catch (const std::runtime_error& e) {
                    throw std::runtime_error("reload " + std::to_string(k) + ": " + e.what() +
                                             " (still answering \"" + current +
                                             "\", waiting for \"" + expected + "\")");
                }
                ++requests;
                if (reply == expected) break;
                if (reply != current) {
                    throw std::runtime_error("reload " + std::to_string(k) + ": got \"" + reply +
                                             "\", expected \"" + current + "\" or \"" + expected +
                                             "\"");
                }
                if (clock_type::now() >= deadline) {
                    throw std::runtime_error("reload " + std::to_string(k) + ": still \"" +
                                             current + "\" " + std::to_string(o.timeout.count()) +
                                             " ms after SIGHUP");
                }
            }
            const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
                clock_type::now() - signalled);
            std::cout << "reload=" << k << " latency_us=" << latency.count()
                      << " requests=" << requests << std::endl;
            current = expected;
            // Spaced out so each reload starts from a settled server (the old version
            // unloaded), as reloads in production do, rather than measuring a reload storm.
            if (k < o.reloads) std::this_thread::sleep_for(o.interval);
        }
    } catch (const std::exception& e) {
        std::cerr << "plugd_bench_reload_probe: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
