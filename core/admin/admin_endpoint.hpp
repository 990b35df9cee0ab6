// admin_endpoint: the HTTP endpoint operators and load balancers talk to (server.json
// `admin`): GET /healthz, /livez, /status, /metrics and POST /reload (?canary=PERCENT),
// /promote and /rollback.
//
// With supervised workers the master serves it (see supervision/master_admin.hpp): it
// answers while every worker is busy or being replaced, from what the workers counted and
// published in their traffic ledgers.
//
// It runs on a thread of its own, never on a worker nor on the control thread: a scrape
// costs the request path nothing, and a reload (which runs plugin constructors, maybe for
// seconds) never leaves a health check unanswered. It answers from the facts the control
// thread last published and from each shard's counters, copied on the shard itself.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_report.hpp"
#include "config.hpp"
#include "control/control_command.hpp"

namespace plugd {

/// What the endpoint cannot know by itself; the server implements it. Every call is made
/// on the admin thread, and none may block it or touch the control thread's state.
class admin_backend {
  public:
    /// A whole response: status and body (JSON unless `content_type` says otherwise).
    struct answer {
        int status = 200;
        std::string body;
        std::string content_type = "application/json";
    };
    /// Each shard's counters, each copied on its own shard's thread.
    virtual boost::asio::awaitable<std::vector<shard_snapshot>> shard_snapshots() = 0;
    /// Stalls noticed so far (an atomic read).
    virtual std::uint64_t stalls() const noexcept = 0;
    /// Times a worker was late because it waited for a CPU (an atomic read).
    virtual std::uint64_t starvations() const noexcept = 0;
    /// Serving threads stalled now (an atomic read).
    virtual std::size_t stalled_threads() const noexcept = 0;
    /// Runs `command` on the control thread (a reload: the same transaction as SIGHUP; a
    /// canary reload, promote, rollback: as `plugd -s` asks them) and answers its outcome;
    /// the admin thread answers other requests while it runs.
    virtual boost::asio::awaitable<answer> command(control_command command) = 0;
    /// With supervised workers (a master's endpoint): each worker slot, with what its
    /// worker published last. Empty for a single plugd.
    virtual std::vector<worker_report> workers(const control_facts& facts) const {
        (void)facts;
        return {};
    }

  protected:
    ~admin_backend() = default;
};

class admin_endpoint {
  public:
    /// Binds `cfg.admin` and starts the admin thread, answering from `facts` until the
    /// next publish(). Throws config_error naming /admin when it cannot bind.
    admin_endpoint(const server_config& cfg, admin_backend& backend,
                   std::shared_ptr<const control_facts> facts);
    /// stop()s the thread if it still runs.
    ~admin_endpoint();

    /// The bound address, "ip:port" (a configured port 0 is ephemeral).
    const std::string& where() const noexcept { return where_; }
    /// Answers from `facts` from now on. Called on the control thread (handed over by a
    /// post: the admin thread alone reads them, so it needs no lock).
    void publish(std::shared_ptr<const control_facts> facts);
    /// Stops accepting and closes every admin connection; thread-safe.
    void close();
    /// Ends the admin thread (a request still waiting for a shard or the control thread is
    /// abandoned) and joins it: called on the control thread before the shards go.
    void stop();

  private:
    struct client;
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(std::shared_ptr<client> c);
    boost::asio::awaitable<admin_backend::answer> route(std::string_view method,
                                                        std::string_view target,
                                                        std::string_view head);
    boost::asio::awaitable<admin_backend::answer> report(bool metrics);
    /// Makes room for a newcomer when every slot is taken: closes the oldest connection
    /// still receiving its request. False when every one is being answered.
    bool make_room();
    void close_all();

    // Everything below is touched only on the admin thread (after construction).
    boost::asio::io_context io_{1};
    admin_backend& backend_;
    const std::string token_;  ///< empty: no token required
    boost::asio::ip::tcp::acceptor acceptor_;
    std::string where_;
    std::shared_ptr<const control_facts> facts_;
    std::list<std::shared_ptr<client>> clients_;
    bool closed_ = false;
    std::uint64_t made_room_ = 0;  ///< connections closed to make room, since the last log
    std::chrono::steady_clock::time_point room_logged_{};
    std::thread thread_;  ///< last: starts once everything above exists
};

}  // namespace plugd
