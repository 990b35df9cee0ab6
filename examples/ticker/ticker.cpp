// ticker: a background task counts every interval_ms; any line answers "ticks=N". The
// count lives in the core's shared state, so it goes on across reloads.
#include <plugd/plugin.hpp>

#include <stdexcept>

namespace {

class ticker final : public plugd::handler {
  public:
    explicit ticker(plugd::context& ctx)
        : ctx_{ctx}, interval_{ctx.config().value("interval_ms", 100)} {
        if (interval_.count() <= 0) throw std::invalid_argument("interval_ms must be above 0");
    }

    // The task belongs to this version: the core cancels it when the version is replaced
    // or the server stops, and waits for it before stop().
    void start() override {
        ctx_.every(
            interval_,
            [this]() -> plugd::task<void> {
                ctx_.shared().increment("ticks");
                co_return;
            },
            "tick");
    }

    plugd::task<void> handle(plugd::request, plugd::reply& out) override {
        out << "ticks=" << ctx_.shared().get("ticks").value_or("0");
        co_return;
    }

  private:
    plugd::context& ctx_;
    std::chrono::milliseconds interval_;
};

}  // namespace

PLUGD_PLUGIN(ticker)
