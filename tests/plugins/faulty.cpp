// faulty: a plugin with the bugs a fault-isolation test needs, each on request.
//   "crash"      dereferences a null pointer (SIGSEGV)
//   "abort"      calls std::abort() (SIGABRT)
//   "block MS"   blocks its worker thread for MS milliseconds (std::this_thread::sleep_for)
//   "spin MS"    keeps its worker thread busy for MS milliseconds (a busy loop)
//   "sleep MS"   waits MS milliseconds the right way (co_await ctx.sleep_for)
//   "pid"        answers "faulty:pid=<the serving process's pid>"
//   anything else is answered "faulty:<message>"
// Config: "crash_construction" (SIGSEGV in the constructor), "crash_on_every_request",
// "crash_percent" (SIGSEGV on that share of its requests in each process, spread evenly:
// 10 crashes on the 10th, 20th, 30th... request; for canary tests), "construct_ms" (the
// constructor blocks that long: a reload in progress to interrupt).
#include <plugd/plugin.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

// The empty asm hides the pointer's value from the optimizer, which would otherwise
// delete (or trap) a store it can prove is to null: a real SIGSEGV at address 0. Not
// instrumented, so sanitizer builds crash the same way instead of reporting it first.
__attribute__((no_sanitize("undefined", "address"))) void crash() {
    volatile int* nowhere = nullptr;
    asm volatile("" : "+r"(nowhere));
    *nowhere = 1;
}

class faulty final : public plugd::handler {
  public:
    explicit faulty(plugd::context& ctx)
        : ctx_{ctx},
          crash_always_{ctx.config().value("crash_on_every_request", false)},
          crash_percent_{ctx.config().value("crash_percent", 0u)} {
        if (ctx.config().value("crash_construction", false)) crash();
        std::this_thread::sleep_for(
            std::chrono::milliseconds{ctx.config().value("construct_ms", 0)});
    }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        const std::string m{req.message()};
        if (crash_always_ || m == "crash") crash();
        if (crash_percent_ > 0 &&
            ((seen_.fetch_add(1) + 1) * crash_percent_) % 100 < crash_percent_)
            crash();
        if (m == "abort") std::abort();
        if (m == "pid") {
            out << "faulty:pid=" << std::to_string(::getpid());
            co_return;
        }
        if (m.starts_with("block ")) {
            std::this_thread::sleep_for(std::chrono::milliseconds{std::stoi(m.substr(6))});
        } else if (m.starts_with("spin ")) {
            const auto until = std::chrono::steady_clock::now() +
                               std::chrono::milliseconds{std::stoi(m.substr(5))};
            while (std::chrono::steady_clock::now() < until) {
            }
        } else if (m.starts_with("sleep ")) {
            co_await ctx_.sleep_for(std::chrono::milliseconds{std::stoi(m.substr(6))});
        }
        out << "faulty:" << m;
    }

  private:
    plugd::context& ctx_;
    bool crash_always_;
    unsigned crash_percent_;
    std::atomic<unsigned long> seen_{0};  // requests so far, on any thread
};

}  // namespace

PLUGD_PLUGIN(faulty)
