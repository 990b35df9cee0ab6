// admin_endpoint: a small HTTP/1.1 server on the control thread, framed by the same parser
// as http listeners, so there is one HTTP implementation to trust.
#include "admin/admin_endpoint.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "framing/http_framing.hpp"
#include "log.hpp"
#include "serving/listener.hpp"

namespace plugd {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// Enough for any request the endpoint understands; a bigger one is refused with 413.
constexpr std::size_t max_admin_request_bytes = 16 * 1024;
// Monitoring keeps a connection or two; more than this at once is a misbehaving client.
constexpr std::size_t max_admin_clients = 32;
// A client that sends nothing for this long is closed.
constexpr std::chrono::seconds admin_idle_timeout{10};

admin_backend::answer not_found() {
    return {404, R"({"error":"no such endpoint; try GET /healthz, GET /status, GET /metrics )"
                 R"(or POST /reload"})"};
}

admin_backend::answer wrong_method(const char* allowed) {
    return {405, std::string{R"({"error":"use )"} + allowed + R"( here"})"};
}

}  // namespace

struct admin_endpoint::client : std::enable_shared_from_this<client> {
    explicit client(tcp::socket s) : socket{std::move(s)}, deadline{socket.get_executor()} {}
    tcp::socket socket;
    asio::steady_timer deadline;

    // Closes the socket if the next read or write is not done in time (a client that
    // stops reading would otherwise hold one of the few admin connections forever).
    void arm() {
        deadline.expires_after(admin_idle_timeout);
        deadline.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
            auto c = self.lock();
            if (ec || !c) return;
            boost::system::error_code ignored;
            c->socket.close(ignored);
        });
    }
};

admin_endpoint::admin_endpoint(asio::io_context& control, const server_config& cfg,
                               admin_backend& backend)
    : control_{control}, backend_{backend}, acceptor_{control} {
    const admin_settings& a = *cfg.admin;
    const tcp::endpoint at{asio::ip::make_address(a.address), a.port};
    boost::system::error_code ec;
    auto fail = [&](const char* step) {
        throw config_error(cfg.source.string() + ": /admin: cannot " + step + " " + a.address +
                           ":" + std::to_string(a.port) + ": " + ec.message() +
                           "; choose a free port for the admin endpoint (or 0 for any)");
    };
    acceptor_.open(at.protocol(), ec);
    if (ec) fail("open a socket for");
    acceptor_.set_option(asio::socket_base::reuse_address{true}, ec);
    acceptor_.bind(at, ec);
    if (ec) fail("bind");
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail("listen on");
    asio::co_spawn(control_, accept_loop(), asio::detached);
}

admin_endpoint::~admin_endpoint() {
    close();
}

std::string admin_endpoint::where() const {
    boost::system::error_code ec;
    const auto at = acceptor_.local_endpoint(ec);
    return ec ? "closed" : format_endpoint(at);
}

void admin_endpoint::close() {
    closed_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : clients_) {
        c->socket.close(ignored);
        c->deadline.cancel();
    }
}

asio::awaitable<void> admin_endpoint::accept_loop() {
    while (!closed_) {
        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple);
        if (closed_ || ec == asio::error::operation_aborted) co_return;
        if (ec) continue;  // out of descriptors: the next accept may succeed
        if (clients_.size() >= max_admin_clients) continue;  // closes it
        auto it = clients_.insert(clients_.end(), std::make_shared<client>(std::move(socket)));
        asio::co_spawn(control_, serve(*it), [this, it](std::exception_ptr) {
            boost::system::error_code ignored;
            (*it)->socket.close(ignored);
            (*it)->deadline.cancel();
            clients_.erase(it);
        });
    }
}

asio::awaitable<void> admin_endpoint::serve(std::shared_ptr<client> self) {
    client& c = *self;
    std::string input, chunked, out;
    for (;;) {
        http_frame request;
        for (;;) {
            request = next_http_request(input, max_admin_request_bytes, chunked);
            if (request.what != http_frame::kind::incomplete) break;
            c.arm();
            char chunk[4096];
            auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(chunk), as_tuple);
            c.deadline.cancel();
            if (ec) co_return;
            input.append(chunk, n);
        }
        out.clear();
        if (request.what == http_frame::kind::error) {
            append_http_response(out, request.status, request.reason, true, false);
            c.arm();
            co_await asio::async_write(c.socket, asio::buffer(out), as_tuple);
            co_return;
        }
        const admin_backend::answer a = co_await route(request.method, request.target);
        const bool close = !request.keep_alive || closed_;
        append_http_response(out, a.status, a.body, close, request.http10,
                             "Content-Type: " + a.content_type + "\r\n");
        c.arm();
        auto [ec, n] = co_await asio::async_write(c.socket, asio::buffer(out), as_tuple);
        c.deadline.cancel();
        if (ec || close) co_return;
        input.erase(0, request.consumed);
    }
}

asio::awaitable<admin_backend::answer> admin_endpoint::route(std::string_view method,
                                                             std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get = method == "GET";
    if (path == "/healthz") {
        co_return get ? backend_.health() : wrong_method("GET");
    }
    if (path == "/status") {
        if (!get) co_return wrong_method("GET");
        co_return co_await backend_.status();
    }
    if (path == "/metrics") {
        if (!get) co_return wrong_method("GET");
        co_return co_await backend_.metrics();
    }
    if (path == "/reload") {
        if (method != "POST") co_return wrong_method("POST");
        log::info("admin: reload requested by POST /reload");
        co_return backend_.reload();
    }
    co_return not_found();
}

}  // namespace plugd
