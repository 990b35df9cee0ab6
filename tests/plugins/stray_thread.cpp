// stray_thread: a plugin that breaks the rule "a plugin starts no threads", as new authors
// do: its constructor starts a detached std::thread that calls back into the plugin's own
// code every 20 ms (for at most 30 s). Once a reload has unloaded the plugin, the thread
// returns into code that is no longer mapped and the process crashes: what a crash report
// must name. Answers "stray:<message>".
#include <plugd/plugin.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace {

std::atomic<unsigned> ticks{0};  // the plugin's own data, touched by the thread

// Not inlined: the thread's every round calls into the plugin's code, not only returns
// to it.
__attribute__((noinline)) void tick() {
    ticks.fetch_add(1, std::memory_order_relaxed);
}

void wander() {
    for (int round = 0; round < 1500; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
        tick();
    }
}

class stray_thread final : public plugd::handler {
  public:
    explicit stray_thread(plugd::context&) { std::thread{wander}.detach(); }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        out << "stray:" << std::string{req.message()};
        co_return;
    }
};

}  // namespace

PLUGD_PLUGIN(stray_thread)
