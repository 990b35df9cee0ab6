// redis_lookup: each line is a key; answers Redis's string value at that key, or NIL. The
// tutorial's "await a database query", against a real database: the core opens, pools and
// times out the connections (ctx.connect); the handler only speaks RESP.
// Config: "host" (default 127.0.0.1), "port" (default 6379), and "tls" for a Redis that
// speaks TLS: {"ca": "ca.pem"} verifies it against that CA (without "ca": the system's CA
// store) with "host" as the name it must have; "certificate" and "key" present a client
// certificate to a Redis that requires one (tls-auth-clients).
#include <plugd/plugin.hpp>

#include <stdexcept>
#include <string>

namespace {

class redis_lookup final : public plugd::handler {
  public:
    explicit redis_lookup(plugd::context& ctx)
        : ctx_{ctx},
          host_{ctx.config().value("host", "127.0.0.1")},
          port_{ctx.config().value("port", std::uint16_t{6379})},
          tls_{tls_from(ctx.config())} {}

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        const std::string key{req.message()};
        auto redis = co_await ctx_.connect(host_, port_, tls_);
        co_await redis->write("*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key +
                              "\r\n");
        const std::string head = co_await redis->read_until("\r\n");  // "$<n>", "$-1" or "-ERR"
        if (head.starts_with("$-1")) {
            out << "NIL";
        } else if (head.starts_with("$")) {
            const std::string value = co_await redis->read_exactly(std::stoul(head.substr(1)) + 2);
            out << std::string_view{value}.substr(0, value.size() - 2);
        } else {
            throw std::runtime_error("redis answered " + head.substr(0, head.size() - 2));
        }
        redis->recycle();  // the exchange is complete: back to the pool
    }

  private:
    static plugd::tls_options tls_from(const nlohmann::json& config) {
        const auto found = config.find("tls");
        if (found == config.end()) return {};  // plain TCP
        if (!found->is_object()) throw std::invalid_argument("\"tls\": expected an object");
        return {.enabled = true,
                .ca_file = found->value("ca", ""),
                .client_certificate = found->value("certificate", ""),
                .client_key = found->value("key", "")};
    }

    plugd::context& ctx_;
    std::string host_;
    std::uint16_t port_;
    plugd::tls_options tls_;
};

}  // namespace

PLUGD_PLUGIN(redis_lookup)
