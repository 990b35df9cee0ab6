// echo: a test plugin that is not greeting. Answers "<version>:<message>", where the
// version is baked in at build time (two builds answer differently, for reload tests).
// Config: "delay_ms" (wait before answering), "log_requests" (log "handling <message>"
// first, so tests can wait for a request to be in flight), "construct_ms" (log "constructing",
// then sleep that long in the constructor: a slow reload), "fail_construction", "fail_start" (throw
// there), "crash_construction" (abort the process there), "throw_on" (throw when the message
// equals it), "hang_on" (never answer it), "pad" (append that many dots to each reply),
// "fail_percent" (throw for that share of its requests, spread evenly: 30 fails 30 of every
// 100 in a row, whichever thread runs them; for canary tests), "hold_on" (answer that message
// only once a request with the message "release_on" names has been handled, by this version
// or a later one: the two meet in the instance's shared state, which survives reloads; a
// test orders events with it instead of guessing how long a reload takes). Over
// HTTP, a request with `X-Echo-Status: N` gets status N, the fields X-Echo (method and
// target) and Content-Type: application/octet-stream, and its body shown first. On a raw
// listener, serve() answers each line as handle() would, until the client closes, after
// sending "banner" (config) first if given.
#include <plugd/plugin.hpp>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#ifndef ECHO_VERSION
#define ECHO_VERSION "v1"
#endif

// A named namespace on purpose (plugins usually use an anonymous one): its class, vtable
// and type_info have external linkage, so the exported-symbols test sees whether
// plugd_add_plugin() really hides everything PLUGD_PLUGIN does not export.
namespace echo_test {

class echo final : public plugd::handler {
  public:
    explicit echo(plugd::context& ctx)
        : ctx_{ctx},
          delay_{ctx.config().value("delay_ms", 0)},
          log_requests_{ctx.config().value("log_requests", false)},
          pad_(ctx.config().value("pad", std::size_t{0}), '.'),
          fail_start_{ctx.config().value("fail_start", false)},
          throw_on_{ctx.config().value("throw_on", std::string{"\x01never"})},
          hang_on_{ctx.config().value("hang_on", std::string{"\x01never"})},
          banner_{ctx.config().value("banner", std::string{})},
          fail_percent_{ctx.config().value("fail_percent", 0u)},
          hold_on_{ctx.config().value("hold_on", std::string{"\x01never"})},
          release_on_{ctx.config().value("release_on", std::string{"\x01never"})} {
        if (const int ms = ctx.config().value("construct_ms", 0); ms > 0) {
            ctx.log(plugd::log_level::info, "constructing");
            std::this_thread::sleep_for(std::chrono::milliseconds{ms});
        }
        if (ctx.config().value("crash_construction", false)) std::abort();  // a plugin bug
        if (ctx.config().value("fail_construction", false)) {
            throw std::invalid_argument("fail_construction is set");
        }
    }

    void start() override {
        if (fail_start_) throw std::runtime_error("fail_start is set");
    }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        if (log_requests_) {
            ctx_.log(plugd::log_level::info, "handling " + std::string{req.message()});
        }
        if (req.message() == throw_on_) throw std::runtime_error("asked to throw");
        if (fail_percent_ > 0 && (seen_.fetch_add(1) * fail_percent_) % 100 < fail_percent_)
            throw std::runtime_error("failing " + std::to_string(fail_percent_) + "% on purpose");
        if (req.message() == hang_on_) {
            for (;;) co_await ctx_.sleep_for(std::chrono::hours{1});
        }
        if (req.message() == release_on_) ctx_.shared().set("echo.released", "1");
        if (req.message() == hold_on_) {
            // Bounded: a test that never releases fails on its own read timeout, not ours.
            for (int i = 0; i < 6000 && !ctx_.shared().get("echo.released"); ++i)
                co_await ctx_.sleep_for(std::chrono::milliseconds{10});
        }
        if (delay_.count() > 0) co_await ctx_.sleep_for(delay_);
        // HTTP requests may ask for a status and see what the SDK shows of them.
        if (const auto status = req.header("X-Echo-Status"); !status.empty()) {
            out.status(std::stoi(std::string{status}));
            out.header("X-Echo", std::string{req.method()} + " " + std::string{req.target()});
            out.header("Content-Type", "application/octet-stream");
            out << "body=" << req.body() << ";";
        }
        out << ECHO_VERSION ":" << req.message() << pad_;
    }

    plugd::task<void> serve(plugd::connection& conn) override {
        if (!banner_.empty()) co_await conn.write(banner_ + "\n");  // the server speaks first
        // An empty line back means the client closed between lines.
        for (std::string line; !(line = co_await conn.read_until("\n")).empty();) {
            line.pop_back();
            if (line == throw_on_) throw std::runtime_error("asked to throw");
            if (delay_.count() > 0) co_await ctx_.sleep_for(delay_);
            co_await conn.write(ECHO_VERSION ":" + line + pad_ + "\n");
        }
    }

  private:
    plugd::context& ctx_;
    std::chrono::milliseconds delay_;
    bool log_requests_;
    std::string pad_;
    bool fail_start_;
    std::string throw_on_;
    std::string hang_on_;
    std::string banner_;
    unsigned fail_percent_;
    std::string hold_on_;
    std::string release_on_;
    std::atomic<unsigned long> seen_{0};  // requests so far, on any thread
};

}  // namespace echo_test

PLUGD_PLUGIN(echo_test::echo)
