// manual_clock: time that moves only when told to, for the plugin test harness.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace plugd {

/// Replaces the host's timers when installed (host::use_manual_clock): context::sleep_for,
/// and the pause of context::every, wait until advance() has moved the clock past their
/// end. Cancellation still ends a wait at once, with operation_aborted, as with real time.
/// Thread-safe.
class manual_clock {
  public:
    /// Suspends the calling coroutine until the clock has moved `duration` from now.
    boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration);

    /// Moves the clock by `duration`, waking the sleepers due on the way in the order of
    /// their deadlines, one deadline at a time: a sleeper woken on the way (a periodic
    /// task) that sleeps again is woken again within the same advance when due.
    /// `settle` is called after each wake-up and must return once the woken coroutines
    /// have run up to their next wait (the harness drains the event loops).
    void advance(std::chrono::milliseconds duration, const std::function<void()>& settle);

    /// Time since the clock was made.
    std::chrono::milliseconds now() const;
    /// Drops every sleeper without waking it: before the event loops their timers use are
    /// destroyed (the harness's end).
    void forget_sleepers();
    /// How many coroutines wait on it now.
    std::size_t sleepers() const;

  private:
    struct sleeper;
    mutable std::mutex mutex_;
    std::chrono::milliseconds now_{0};
    std::vector<std::shared_ptr<sleeper>> sleepers_;
};

}  // namespace plugd
