// facilities: a test plugin that uses each host facility on request. Replies start with
// FACILITIES_VERSION, so two builds answer differently (reload tests alternate them).
//   "block <ms>"      an offloaded job blocks an offload thread for <ms>
//   "blockhere <ms>"  blocks the worker thread itself, as the docs forbid (for comparison)
//   "fail"            an offloaded job that throws
//   "set <k> <v>", "get <k>", "incr <k>"   the instance's shared state
//   "ticks"           how often the every() task started in start() has run
//   "linger <ms>"     spawns a task that sleeps <ms>, then counts "lingered" in shared state
//   "fetch <port> <line>"  asks 127.0.0.1:<port> <line> over a pooled outbound connection
//   "peer"            the client's address
// config: "tick_ms" (default 0: no periodic task), "log_jobs" (log "offloading <ms>" before
// an offload and "job running" when the job starts).
// start() and stop() log "start <version>" and "stop <version>".
#include <plugd/plugin.hpp>

#include <charconv>
#include <stdexcept>
#include <thread>

#ifndef FACILITIES_VERSION
#define FACILITIES_VERSION "f1"
#endif

namespace {

std::chrono::milliseconds millis(std::string_view text) {
    int ms = 0;
    std::from_chars(text.data(), text.data() + text.size(), ms);
    return std::chrono::milliseconds{ms};
}

class facilities final : public plugd::handler {
  public:
    explicit facilities(plugd::context& ctx)
        : ctx_{ctx},
          tick_{std::chrono::milliseconds{ctx.config().value("tick_ms", 0)}},
          log_jobs_{ctx.config().value("log_jobs", false)} {}

    void start() override {
        ctx_.log(plugd::log_level::info, "start " FACILITIES_VERSION);
        if (tick_.count() > 0) {
            ctx_.every(
                tick_,
                [this]() -> plugd::task<void> {
                    ctx_.shared().increment("ticks");
                    co_return;
                },
                "ticker");
        }
    }

    void stop() noexcept override { ctx_.log(plugd::log_level::info, "stop " FACILITIES_VERSION); }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        const std::string_view m = req.message();
        const auto arg = m.substr(m.find(' ') + 1);
        out << FACILITIES_VERSION ":";
        if (m.starts_with("block ")) {
            const auto ms = millis(arg);
            if (log_jobs_) ctx_.log(plugd::log_level::info, "offloading " + std::string{arg});
            const auto id = co_await ctx_.offload([this, ms] {
                if (log_jobs_) ctx_.log(plugd::log_level::info, "job running");
                std::this_thread::sleep_for(ms);
                return std::this_thread::get_id();
            });
            out << (id == std::this_thread::get_id() ? "same thread" : "offloaded");
        } else if (m.starts_with("blockhere ")) {
            std::this_thread::sleep_for(millis(arg));
            out << "blocked here";
        } else if (m == "fail") {
            // Named: it owns a string (see context::offload).
            auto job = [why = std::string{"the job failed"}]() -> int {
                throw std::runtime_error(why);
            };
            co_await ctx_.offload(job);
        } else if (m.starts_with("set ")) {
            const auto space = arg.find(' ');
            ctx_.shared().set(arg.substr(0, space), arg.substr(space + 1));
            out << "OK";
        } else if (m.starts_with("get ")) {
            out << ctx_.shared().get(arg).value_or("NIL");
        } else if (m.starts_with("incr ")) {
            out << std::to_string(ctx_.shared().increment(arg));
        } else if (m.starts_with("fetch ")) {
            // "fetch <port> <line>": sends <line> to 127.0.0.1:<port> over a pooled
            // outbound connection and answers the reply line.
            const auto space = arg.find(' ');
            int port = 0;
            std::from_chars(arg.data(), arg.data() + space, port);
            auto peer = co_await ctx_.connect("127.0.0.1", static_cast<std::uint16_t>(port));
            co_await peer->write(std::string{arg.substr(space + 1)} + "\n");
            std::string reply = co_await peer->read_until("\n");
            peer->recycle();
            reply.pop_back();
            out << reply;
        } else if (m == "peer") {
            out << req.peer();
        } else if (m == "ticks") {
            out << ctx_.shared().get("ticks").value_or("0");
        } else if (m.starts_with("linger ")) {
            ctx_.spawn(linger(millis(arg)), "linger");
            out << "spawned";
        } else {
            out << "?";
        }
    }

  private:
    plugd::task<void> linger(std::chrono::milliseconds ms) {
        co_await ctx_.sleep_for(ms);
        ctx_.shared().increment("lingered");
    }

    plugd::context& ctx_;
    std::chrono::milliseconds tick_;
    bool log_jobs_;
};

}  // namespace

PLUGD_PLUGIN(facilities)
