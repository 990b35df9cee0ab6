// gate: a test filter. On http requests it lets through only those whose X-Token field is
// its config's "token" (others get 401 "denied"), attaches "gate.token" for the plugins
// after it, and marks the reply with an X-Gate field once the rest of the chain has
// answered. On other framings it passes every request, attaching the token too.
// config: "token" (default "A"), "delay_ms" (default 0: a pause between letting a request
// through and running the rest of the chain, during which a reload can land).
#include <plugd/plugin.hpp>

#include <chrono>
#include <string>

namespace {

class gate final : public plugd::handler {
  public:
    explicit gate(plugd::context& ctx)
        : ctx_{ctx},
          token_{ctx.config().value("token", std::string{"A"})},
          delay_{ctx.config().value("delay_ms", 0)} {}

    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        if (req.is_http() && req.header("X-Token") != token_) {
            out.status(401);
            out << "denied";
            co_return;
        }
        req.attach("gate.token", token_);
        if (delay_ > 0) co_await ctx_.sleep_for(std::chrono::milliseconds{delay_});
        co_await next(req, out);
        out.header("X-Gate", token_ + " " + std::to_string(out.status()));
    }

  private:
    plugd::context& ctx_;
    std::string token_;
    int delay_;
};

}  // namespace

PLUGD_PLUGIN(gate)
