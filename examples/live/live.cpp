// live: a background task publishes a JSON tick every interval_ms (default 1000) to topic
// "live"; every WebSocket client of the route's path (ws://host/live) receives each one.
// What a client sends is ignored: the stream only goes out.
#include <plugd/plugin.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

class live final : public plugd::handler {
  public:
    explicit live(plugd::context& ctx)
        : ctx_{ctx}, interval_{ctx.config().value("interval_ms", 1000)} {
        if (interval_.count() <= 0) throw std::invalid_argument("interval_ms must be above 0");
    }

    // The task belongs to this version: a reload's new version takes over the ticks, and
    // sessions still on the old one keep receiving them (topics belong to the core).
    void start() override {
        ctx_.every(
            interval_,
            [this]() -> plugd::task<void> {
                const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch());
                const nlohmann::json tick{{"tick", ++ticks_}, {"unix_ms", now.count()}};
                ctx_.topics().publish("live", tick.dump());
                co_return;
            },
            "tick");
    }

    plugd::task<void> serve_session(plugd::session& s) override {
        ctx_.topics().subscribe(s, "live");
        while (auto ev = co_await s.next()) {
            if (ev.published()) co_await s.forward(ev);
        }
    }

  private:
    plugd::context& ctx_;
    std::chrono::milliseconds interval_;
    std::uint64_t ticks_ = 0;  ///< the task runs on one thread at a time
};

}  // namespace

PLUGD_PLUGIN(live)
