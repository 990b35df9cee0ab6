// admin_endpoint: the HTTP endpoint operators and load balancers talk to (server.json
// `admin`): GET /healthz, /status, /metrics and POST /reload.
//
// It runs on the control thread, never on a worker: a scrape or a reload costs the
// request path nothing, and what it reports it gathers by asking each shard in turn.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "config.hpp"

namespace plugd {

/// What the endpoint answers with; the server implements it on the control thread.
class admin_backend {
  public:
    /// A whole response: status and body (JSON unless `content_type` says otherwise).
    struct answer {
        int status = 200;
        std::string body;
        std::string content_type = "application/json";
    };
    virtual answer health() = 0;
    virtual boost::asio::awaitable<answer> status() = 0;
    virtual boost::asio::awaitable<answer> metrics() = 0;
    /// Runs a reload now (the same transaction as SIGHUP) and answers its outcome.
    virtual answer reload() = 0;

  protected:
    ~admin_backend() = default;
};

class admin_endpoint {
  public:
    /// Binds `settings` on `control`'s thread and starts accepting. Throws config_error
    /// naming /admin when it cannot bind.
    admin_endpoint(boost::asio::io_context& control, const server_config& cfg,
                   admin_backend& backend);
    ~admin_endpoint();

    /// The bound address, "ip:port" (a configured port 0 is ephemeral).
    std::string where() const;
    /// Stops accepting and closes every admin connection: the control thread may end.
    void close();

  private:
    struct client;
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(std::shared_ptr<client> c);
    boost::asio::awaitable<admin_backend::answer> route(std::string_view method,
                                                        std::string_view target);

    boost::asio::io_context& control_;
    admin_backend& backend_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::list<std::shared_ptr<client>> clients_;
    bool closed_ = false;
};

}  // namespace plugd
