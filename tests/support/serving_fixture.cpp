// serving_fixture: a shard, its plugin version and a route set up as plugd's start-up sets
// them up (server.cpp, reload/deployment.cpp), minus the acceptor: the test hands the shard
// its connections.
#include "serving_fixture.hpp"

#include <doctest/doctest.h>

#include <boost/asio/post.hpp>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "faults/stall_monitor.hpp"
#include "host/host.hpp"
#include "log.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/private_dir.hpp"
#include "serving/connection.hpp"
#include "serving/shard.hpp"

namespace plugd::test {
namespace {

// How long the test waits for the shard's thread to run something posted to it, and for
// the shard to stop: far more than either takes unless something blocks it.
constexpr milliseconds wait_limit = 5s;

// The core's log is process-wide, and its sink a plain function: the lines live here.
struct kept_log {
    std::mutex mutex;
    std::vector<std::string> lines;
};

kept_log& kept() {
    static kept_log log;
    return log;
}

void keep_line(log::level severity, std::string_view message) {
    static constexpr const char* names[] = {"debug", "info", "warn", "error"};
    auto& log = kept();
    std::lock_guard lock{log.mutex};
    log.lines.push_back(std::string{names[static_cast<int>(severity)]} + " " +
                        std::string{message});
}

// Keeps the log's lines from its construction to its destruction.
struct log_capture {
    log_capture() {
        {
            auto& log = kept();
            std::lock_guard lock{log.mutex};
            log.lines.clear();
        }
        log::set_sink(&keep_line);
    }
    ~log_capture() { log::set_sink(nullptr); }  // stderr again
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;
};

}  // namespace

std::filesystem::path bundled_plugin(const std::string& name) {
    return std::filesystem::path{PLUGD_BUNDLED_PLUGIN_DIR} / (name + ".so");
}

std::filesystem::path test_plugin(const std::string& name) {
    return std::filesystem::path{PLUGD_TEST_PLUGIN_DIR} / (name + ".so");
}

// Member order is destruction order, reversed, as in plugd's server: the shard (its event
// loop, with any coroutine frames it still holds) goes before the plugin version those
// frames may call, and the version before the host its context uses.
struct serving_fixture::parts {
    log_capture log;     ///< first in, last out: loading and unloading log too
    private_dir copies;  ///< where the plugin version is loaded from
    stall_monitor stalls{1, std::chrono::seconds{10}};
    host facilities{host::settings{1, 16}, [] {}};
    traffic_ledger ledger;
    std::shared_ptr<plugin_version> version;
    std::unique_ptr<shard> serving;
    /// The shard's route, also held here to create connections on it: touched on the
    /// shard's thread only, while it runs.
    std::shared_ptr<shard_listener> listener;
    std::promise<void> exited;

    explicit parts(served_listener l) {
        serving = std::make_unique<shard>(0, 1, ledger, [] {});
        facilities.set_serving_loops({&serving->io()});

        plugin_spec plugin;
        plugin.name = "plugin";
        plugin.file = std::filesystem::absolute(l.plugin);
        plugin.dir = plugin.file.parent_path();
        plugin.config = std::move(l.plugin_config);
        version = std::make_shared<plugin_version>(plugin, copies.path(), 1, facilities);
        version->start();

        listener_spec spec;
        spec.name = "test";
        spec.address = "127.0.0.1";
        spec.framing = l.framing;
        spec.plugin = plugin.name;
        spec.chain = {plugin.name};
        spec.limits = l.limits;
        // Never opened: accept_loop sees a closed acceptor and ends at once.
        listener = std::make_shared<shard_listener>(serving->io(), spec);

        // Posted before the thread starts, so it is the first thing the shard does; nothing
        // after start() may throw (the shard would then never be stopped).
        shard_update update;
        update.plugins = {{plugin.name, version}};
        update.added = {listener};
        asio::post(serving->io(), [s = serving.get(), u = std::move(update)]() mutable {
            s->apply(std::move(u));
        });
        serving->start(stalls, [this] { exited.set_value(); });
    }

    ~parts() {
        asio::post(serving->io(), [s = serving.get()] { s->begin_shutdown(); });
        if (exited.get_future().wait_for(wait_limit) != std::future_status::ready) {
            FAIL_CHECK(
                "serving_fixture: the shard did not stop within 5 s of its shutdown: "
                "a connection stayed open (is a client declared before the fixture?)");
            serving->io().stop();  // the shard deletes what is left, as after shutdown_timeout
        }
        serving->join();
        facilities.stop(std::chrono::steady_clock::now() + wait_limit);
        listener.reset();  // its acceptor belongs to the shard's event loop
        serving.reset();
        version.reset();
    }

    // Runs `f` on the shard's thread and returns what it returns (or throws what it throws).
    template <class F>
    std::invoke_result_t<F&> on_shard(F f) {
        using result = std::invoke_result_t<F&>;
        auto done = std::make_shared<std::promise<result>>();
        auto answer = done->get_future();
        asio::post(serving->io(), [done, f = std::move(f)]() mutable {
            try {
                if constexpr (std::is_void_v<result>) {
                    f();
                    done->set_value();
                } else {
                    done->set_value(f());
                }
            } catch (...) {
                done->set_exception(std::current_exception());
            }
        });
        if (answer.wait_for(wait_limit) != std::future_status::ready) {
            throw std::runtime_error(
                "serving_fixture: the shard's thread did not run a call posted to it within 5 s: "
                "something blocks it");
        }
        return answer.get();
    }

    // Polls `count` on the shard's thread until it is `n`. Each look is a round trip to
    // that thread, which paces the loop: no sleep.
    template <class Count>
    bool wait_count(Count count, std::size_t n, milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            if (on_shard(count) == n) return true;
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::yield();
        }
    }
};

serving_fixture::serving_fixture(served_listener listener)
    : parts_{std::make_unique<parts>(std::move(listener))} {}

serving_fixture::~serving_fixture() = default;

line_client serving_fixture::connect(pair_kind kind) {
    const int type = kind == pair_kind::records ? SOCK_SEQPACKET : SOCK_STREAM;
    int fds[2];
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) {
        throw std::runtime_error(std::string{"serving_fixture: socketpair: "} +
                                 std::strerror(errno));
    }
    auto client = line_client::adopt(fds[0]);
    // On the shard's thread, as its accept loop creates a connection. Any stream socket
    // serves as the transport's: the TCP options it cannot take are ignored.
    parts_->on_shard([&s = *parts_->serving, r = parts_->listener, fd = fds[1]] {
        transport::socket_type socket{s.io()};
        boost::system::error_code ec;
        socket.assign(tcp::v4(), fd, ec);
        if (ec) {
            ::close(fd);
            throw std::runtime_error("serving_fixture: cannot serve a socket pair's end: " +
                                     ec.message());
        }
        (new client_connection{s, r, transport{std::move(socket)}})->start();  // owns itself
    });
    return client;
}

std::size_t serving_fixture::open_connections() {
    return parts_->on_shard([r = parts_->listener] { return r->open_connections; });
}

namespace {

// Of a route's connections waiting for a new request (its idle list), those parked.
std::size_t parked_on(const shard_listener& r) {
    std::size_t parked = 0;
    for (const connection_link& link : r.idle) parked += link.self->parked ? 1 : 0;
    return parked;
}

}  // namespace

std::size_t serving_fixture::parked_connections() {
    return parts_->on_shard([r = parts_->listener] { return parked_on(*r); });
}

bool serving_fixture::wait_open_connections(std::size_t n, milliseconds limit) {
    return parts_->wait_count([r = parts_->listener] { return r->open_connections; }, n, limit);
}

bool serving_fixture::wait_parked_connections(std::size_t n, milliseconds limit) {
    return parts_->wait_count([r = parts_->listener] { return parked_on(*r); }, n, limit);
}

void serving_fixture::wait_read_by_server(const line_client& client, milliseconds limit) {
    // SIOCOUTQ on a Unix stream socket: what this end sent that the other end has not read
    // yet (the memory of its queued messages, not a byte count).
    const auto unread = [&] {
        int queued = 0;
        if (::ioctl(client.fd(), SIOCOUTQ, &queued) != 0) {
            throw std::runtime_error(std::string{"serving_fixture: ioctl(SIOCOUTQ): "} +
                                     std::strerror(errno));
        }
        return queued;
    };
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (unread() != 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error(
                "serving_fixture: the server did not read what the client "
                "sent within " +
                std::to_string(limit.count()) + " ms");
        }
        parts_->on_shard([] {});  // the shard's thread runs: the pace of this loop
    }
}

std::vector<std::string> serving_fixture::log_lines() const {
    auto& log = kept();
    std::lock_guard lock{log.mutex};
    return log.lines;
}

}  // namespace plugd::test
