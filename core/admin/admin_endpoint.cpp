// admin_endpoint: a small HTTP/1.1 server on a thread of its own, framed by the same parser
// as http listeners, so there is one HTTP implementation to trust.
#include "admin/admin_endpoint.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <pthread.h>

#include <algorithm>
#include <charconv>
#include <variant>

#include <nlohmann/json.hpp>

#include "admin/admin_auth.hpp"
#include "control/reload_status.hpp"
#include "framing/http_framing.hpp"
#include "log.hpp"
#include "transport/transport.hpp"

namespace plugd {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using answer = admin_backend::answer;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

// Enough for any request the endpoint understands; a bigger one is refused with 413.
constexpr std::size_t max_admin_request_bytes = 16 * 1024;
// Monitoring keeps a connection or two; more than this at once is a misbehaving client.
constexpr std::size_t max_admin_clients = 32;
// One deadline for a whole request, from the connection's accept (or the end of the
// previous response) to its last byte, and one for writing each response: a client that
// trickles a byte at a time cannot hold a slot longer than this. A health check's request
// is one packet; 5 s outlasts TCP's retransmissions of it on a lossy path.
constexpr std::chrono::seconds admin_request_deadline{5};
// How often making room for newcomers is logged at most (an attack would flood the log).
constexpr std::chrono::seconds room_log_interval{5};

answer not_found() {
    return {404, R"({"error":"no such endpoint; try GET /healthz, GET /livez, GET /status, )"
                 R"(GET /metrics, POST /reload, POST /promote or POST /rollback"})"};
}

answer bad_request(const std::string& why) {
    return {400, nlohmann::json{{"ok", false}, {"error", why}}.dump() + "\n"};
}

// POST /reload's query: nothing, or canary=PERCENT (1 to 99). An error's words otherwise.
std::variant<unsigned, std::string> canary_percent_of(std::string_view target) {
    const auto question = target.find('?');
    if (question == std::string_view::npos) return 0u;
    const std::string_view query = target.substr(question + 1);
    if (!query.starts_with("canary=") || query.find('&') != std::string_view::npos)
        return std::string{
                   "POST /reload takes one query parameter, canary=PERCENT (1 to 99), "
                   "not \""} +
               std::string{query} + "\"";
    const std::string_view value = query.substr(7);
    unsigned percent = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), percent);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || percent < 1 ||
        percent > 99)
        return "canary=" + std::string{value} +
               ": expected a percentage from 1 to 99 (the share of new requests the canary takes)";
    return percent;
}

answer wrong_method(const char* allowed) {
    return {405, std::string{R"({"error":"use )"} + allowed + R"( here"})"};
}

// No detail: a client without the token learns nothing but that it needs one.
answer unauthorized() {
    return {401, R"({"error":"unauthorized"})"
                 "\n"};
}

bool stopping(const control_facts& f) {
    return f.state == "stopping";
}

}  // namespace

struct admin_endpoint::client {
    explicit client(tcp::socket s) : socket{std::move(s)}, deadline{socket.get_executor()} {}
    tcp::socket socket;
    asio::steady_timer deadline;
    bool receiving = true;  ///< its request is not whole yet: the first to go for a newcomer
    bool closed = false;    ///< its coroutine ends soon; it holds no slot

    // Closes the socket at `when` unless the phase ends (cancel()) before: the deadline runs
    // for the phase as a whole, it does not restart on every read.
    void close_at(clock::time_point when, const std::shared_ptr<client>& self) {
        deadline.expires_at(when);
        deadline.async_wait([weak = std::weak_ptr{self}](const boost::system::error_code& ec) {
            if (auto c = weak.lock(); c && !ec) c->close();
        });
    }
    void close() {
        closed = true;
        boost::system::error_code ignored;
        socket.close(ignored);
        deadline.cancel();
    }
};

admin_endpoint::admin_endpoint(const server_config& cfg, admin_backend& backend,
                               std::shared_ptr<const control_facts> facts)
    : backend_{backend}, token_{cfg.admin->token}, acceptor_{io_}, facts_{std::move(facts)} {
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
    where_ = format_endpoint(acceptor_.local_endpoint());
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread{[this] { io_.run(); }};
    ::pthread_setname_np(thread_.native_handle(), "plugd-admin");
}

admin_endpoint::~admin_endpoint() {
    stop();
}

void admin_endpoint::publish(std::shared_ptr<const control_facts> facts) {
    asio::post(io_, [this, facts = std::move(facts)]() mutable { facts_ = std::move(facts); });
}

void admin_endpoint::close() {
    asio::post(io_, [this] { close_all(); });
}

void admin_endpoint::stop() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
}

void admin_endpoint::close_all() {
    closed_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : clients_) c->close();
}

bool admin_endpoint::make_room() {
    // Oldest first: the list is in the order of accepting. A newer trickler goes later, so
    // a burst of them cannot push out a health check that just arrived.
    const auto oldest = std::find_if(clients_.begin(), clients_.end(),
                                     [](const auto& c) { return c->receiving && !c->closed; });
    if (oldest == clients_.end()) return false;
    (*oldest)->close();
    ++made_room_;
    if (const auto now = clock::now(); now - room_logged_ >= room_log_interval) {
        log::warn("admin: " + std::to_string(max_admin_clients) +
                  " connections open; closed the oldest one still sending its request to make "
                  "room for a new one (" +
                  std::to_string(made_room_) + " since the last such line)");
        made_room_ = 0;
        room_logged_ = now;
    }
    return true;
}

asio::awaitable<void> admin_endpoint::accept_loop() {
    while (!closed_) {
        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple);
        if (closed_ || ec == asio::error::operation_aborted) co_return;
        if (ec) continue;  // out of descriptors: the next accept may succeed
        const auto open = std::count_if(clients_.begin(), clients_.end(),
                                        [](const auto& c) { return !c->closed; });
        if (static_cast<std::size_t>(open) >= max_admin_clients && !make_room()) {
            continue;  // every slot is being answered: closes the newcomer
        }
        auto it = clients_.insert(clients_.end(), std::make_shared<client>(std::move(socket)));
        asio::co_spawn(io_, serve(*it), [this, it](std::exception_ptr) {
            (*it)->close();
            clients_.erase(it);
        });
    }
}

asio::awaitable<void> admin_endpoint::serve(std::shared_ptr<client> self) {
    client& c = *self;
    std::string input, out;
    http_codec codec;  // the same framing as an http listener's
    for (;;) {
        c.receiving = true;
        c.close_at(clock::now() + admin_request_deadline, self);
        frame request;
        for (;;) {
            request = codec.decode(input, max_admin_request_bytes, false);
            if (request.what != frame::kind::incomplete) break;
            char chunk[4096];
            auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(chunk), as_tuple);
            if (ec) co_return;
            input.append(chunk, n);
        }
        c.receiving = false;
        out.clear();
        if (request.what != frame::kind::request) {
            http_codec::encode_refusal(out, request);
            c.close_at(clock::now() + admin_request_deadline, self);
            co_await asio::async_write(c.socket, asio::buffer(out), as_tuple);
            co_return;
        }
        const http_request_view& http = *request.http;
        // The answer has a deadline too (a stalled shard must not keep /status or /metrics
        // holding a slot for ever); a reload's runs as long as the reload, which is bounded
        // by its trial load and drain settings.
        const std::string_view path = http.target.substr(0, http.target.find('?'));
        if (path == "/reload" || path == "/promote" || path == "/rollback") {
            c.deadline.cancel();
        } else {
            c.close_at(clock::now() + admin_request_deadline, self);
        }
        const answer a = co_await route(http.method, http.target, http.head);
        codec.reply_buffer(out) = a.body;
        std::string& fields = *codec.reply_head()->fields;
        fields = "Content-Type: " + a.content_type + "\r\n";
        if (a.status == 401) fields += "WWW-Authenticate: Bearer realm=\"plugd admin\"\r\n";
        const bool keep_open = codec.encode_reply(out, a.status, closed_);
        c.close_at(clock::now() + admin_request_deadline, self);
        auto [ec, n] = co_await asio::async_write(c.socket, asio::buffer(out), as_tuple);
        c.deadline.cancel();
        if (ec || !keep_open || c.closed) co_return;
        input.erase(0, request.consumed);
    }
}

asio::awaitable<answer> admin_endpoint::route(std::string_view method, std::string_view target,
                                              std::string_view head) {
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get = method == "GET";
    if (path == "/healthz") {
        // A balancer's health check needs no token: it changes nothing and tells nothing.
        if (!get) co_return wrong_method("GET");
        if (stopping(*facts_))
            co_return answer{503, R"({"state":"stopping"})"
                                  "\n"};
        if (facts_->state == "draining")
            co_return answer{503, R"({"state":"draining"})"
                                  "\n"};
        if (!facts_->workers.empty()) {
            // A master: ready while its workers serve (see why_not_ready).
            if (const auto why = why_not_ready(*facts_, backend_.workers(*facts_), unix_ms())) {
                co_return answer{
                    503, nlohmann::json{{"state", "serving"}, {"ready", false}, {"reason", *why}}
                                 .dump() +
                             "\n"};
            }
        }
        co_return answer{200, R"({"state":"serving"})"
                              "\n"};
    }
    if (path == "/livez") {
        // Liveness, for an orchestrator deciding whether to restart the process: alive
        // unless a serving thread is stalled now (a handler blocking its event loop past
        // stall_warn_ms). Unlike /healthz it stays 200 through a drain and a stop: a
        // process that is stopping cleanly must not be killed for it.
        if (!get) co_return wrong_method("GET");
        const std::size_t stalled = backend_.stalled_threads();
        co_return answer{stalled == 0 ? 200 : 503, R"({"state":")" + facts_->state +
                                                       R"(","stalled_threads":)" +
                                                       std::to_string(stalled) + "}\n"};
    }
    if (!token_.empty() && !has_bearer_token(head, token_)) co_return unauthorized();
    if (path == "/status" || path == "/metrics") {
        if (!get) co_return wrong_method("GET");
        co_return co_await report(path == "/metrics");
    }
    if (path == "/reload") {
        if (method != "POST") co_return wrong_method("POST");
        const auto percent = canary_percent_of(target);
        if (const auto* why = std::get_if<std::string>(&percent)) co_return bad_request(*why);
        const control_command command{control_command::kind::reload, std::get<unsigned>(percent)};
        log::info("admin: " + command.name() + " requested by POST " + std::string{target});
        co_return co_await backend_.command(command);
    }
    if (path == "/promote" || path == "/rollback") {
        if (method != "POST") co_return wrong_method("POST");
        const control_command command{path == "/promote" ? control_command::kind::promote
                                                         : control_command::kind::rollback};
        log::info("admin: " + command.name() + " requested by POST " + std::string{path});
        co_return co_await backend_.command(command);
    }
    co_return not_found();
}

asio::awaitable<answer> admin_endpoint::report(bool metrics) {
    const auto refused = [metrics] {
        return metrics ? answer{503, "stopping\n", "text/plain"}
                       : answer{503, R"({"state":"stopping"})"
                                     "\n"};
    };
    // Nothing once the shards are stopping: an event loop that has run out of work would
    // never answer.
    if (stopping(*facts_)) co_return refused();
    server_report r;
    r.shards = co_await backend_.shard_snapshots();
    if (stopping(*facts_)) co_return refused();  // began while we waited
    // The facts as they are after the shards answered: a reload committed meanwhile shows
    // its generation with the counters that may already include its versions.
    r.facts = facts_;
    r.now_unix_ms = unix_ms();
    r.stalls = backend_.stalls();
    r.starvations = backend_.starvations();
    r.workers = backend_.workers(*r.facts);
    if (metrics) co_return answer{200, metrics_text(r), "text/plain; version=0.0.4"};
    co_return answer{200, status_json(r)};
}

}  // namespace plugd
