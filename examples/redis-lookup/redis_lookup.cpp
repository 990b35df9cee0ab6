// redis_lookup: each line is a key; answers Redis's string value at that key, or NIL. The
// tutorial's "await a database query", against a real database: the core opens, pools and
// times out the connections (ctx.connect); the handler only speaks RESP.
// Config: "host" (default 127.0.0.1), "port" (default 6379).
#include <plugd/plugin.hpp>

#include <string>

namespace {

class redis_lookup final : public plugd::handler {
  public:
    explicit redis_lookup(plugd::context& ctx)
        : ctx_{ctx},
          host_{ctx.config().value("host", "127.0.0.1")},
          port_{ctx.config().value("port", std::uint16_t{6379})} {}

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        const std::string key{req.message()};
        auto redis = co_await ctx_.connect(host_, port_);
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
    plugd::context& ctx_;
    std::string host_;
    std::uint16_t port_;
};

}  // namespace

PLUGD_PLUGIN(redis_lookup)
