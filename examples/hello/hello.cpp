// hello: a complete out-of-tree plugd plugin. Answers "<greeting>, <message>!" and counts
// down an optional delay, to show a handler awaiting a host timer.
#include <plugd/plugin.hpp>

#include <stdexcept>
#include <string>

namespace {

class hello final : public plugd::handler {
  public:
    // Construction is configuration: read and check everything here, and throw with the
    // key's name when a value is unusable; plugd reports it and keeps its old config.
    explicit hello(plugd::context& ctx)
        : ctx_{ctx},
          greeting_{ctx.config().value("greeting", "Hello")},
          delay_{ctx.config().value("delay_ms", 0)} {
        if (delay_.count() < 0) throw std::invalid_argument("delay_ms must be 0 or more");
    }

    void start() override {
        ctx_.log(plugd::log_level::info, "greeting with \"" + greeting_ + "\"");
    }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        if (delay_.count() > 0) co_await ctx_.sleep_for(delay_);  // a host timer: no thread held
        out << greeting_ << ", " << req.message() << "!";
    }

  private:
    plugd::context& ctx_;
    std::string greeting_;
    std::chrono::milliseconds delay_;
};

}  // namespace

PLUGD_PLUGIN(hello)
