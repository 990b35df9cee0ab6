// greeting: answers every request with "<prefix><message>", optionally after a delay.
#include <plugd/plugin.hpp>

#include <stdexcept>

namespace {

class greeting final : public plugd::handler {
  public:
    explicit greeting(plugd::context& ctx)
        : ctx_{ctx},
          prefix_{ctx.config().value("prefix", "Hello, ")},
          delay_{ctx.config().value("delay_ms", 0)} {
        if (delay_.count() < 0) throw std::invalid_argument("delay_ms must be 0 or more");
    }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        if (delay_.count() > 0) co_await ctx_.sleep_for(delay_);
        out << prefix_ << req.message();
    }

  private:
    plugd::context& ctx_;
    std::string prefix_;
    std::chrono::milliseconds delay_;
};

}  // namespace

PLUGD_PLUGIN(greeting)
