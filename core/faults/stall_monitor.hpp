// stall_monitor: notices a worker thread whose event loop has not come back for longer
// than stall_warn_ms, as Seastar's reactor stall detector does, and says what it runs.
//
// Each worker's event loop stamps a heartbeat (a relaxed store to memory only it writes)
// from a timer; a monitor thread, outside the workers, compares the stamps with the
// clock. For a stalled worker it sends that thread a signal whose handler copies what
// this_thread_runs() says and a backtrace (the request it describes is alive: it is what
// blocks the thread); the monitor logs it, and the total when the worker comes back.
//
// A worker that is late because it was not given a CPU (a starved machine or container:
// its thread was runnable, waiting on a run queue) is not stalled: nothing of plugd blocks
// it. Each beat also stamps the worker's CPU time (its thread CPU clock); for a late
// worker the monitor reads that clock (pthread_getcpuclockid) and the thread's state
// (/proc/self/task/TID/stat). Runnable ('R') yet it ran for less than a quarter of the time
// since its beat: it waited for a CPU, and is reported as starved (coalesced: at most one
// line per 5 s), never as a stall. Asleep in a system call (not runnable), or running a
// quarter of the time or more: a stall, as before. (The CPU clock alone cannot tell: a thread
// blocked in sleep() does not run either; schedstat's run-queue wait cannot either: it counts a
// wait only once the wait has ended.)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace plugd {

class stall_monitor {
  public:
    /// Watches `workers` serving threads, each of which calls watch_this_thread() once.
    stall_monitor(std::size_t workers, std::chrono::milliseconds warn_after);
    ~stall_monitor();
    stall_monitor(const stall_monitor&) = delete;
    stall_monitor& operator=(const stall_monitor&) = delete;

    /// On serving thread `index`, first thing: makes the thread known (for the signal).
    void watch_this_thread(std::size_t index) noexcept;
    /// On worker thread `index`, from its event loop: it came back. Lock-free.
    void beat(std::size_t index) noexcept;
    /// Serving thread `index` stops beating (it shuts down): no longer watched.
    void stop_watching(std::size_t index) noexcept;
    /// How often a worker should beat: a quarter of the threshold, 10 ms to 1 s.
    std::chrono::milliseconds beat_interval() const noexcept;
    /// A reload may change stall_warn_ms.
    void set_warn_after(std::chrono::milliseconds warn_after) noexcept;
    /// Stalls noticed so far (for /metrics).
    std::uint64_t stalls() const noexcept { return stalls_.load(std::memory_order_relaxed); }
    /// Times a worker was late because it waited for a CPU (for /metrics; not stalls).
    std::uint64_t starvations() const noexcept {
        return starvations_.load(std::memory_order_relaxed);
    }
    /// Serving threads stalled now: reported by a "has not returned to its event loop"
    /// line and not yet by its "stall ended" (for /livez; a starved thread is not stalled).
    std::size_t stalled_now() const noexcept {
        return stalled_now_.load(std::memory_order_relaxed);
    }

    struct worker;  ///< one watched thread (defined in the .cpp; its signal handler uses it)

  private:
    void run();
    void report_start(std::size_t index, worker& w, std::int64_t age_ms);
    void report_end(std::size_t index, worker& w, std::int64_t total_ms);
    /// Whether worker `w`, late since its beat at `last_ms`, is runnable yet ran (by its
    /// CPU clock) for less than a quarter of that time: it waits for a CPU. `ran_ms`: how long
    /// it ran.
    bool waited_for_cpu(worker& w, std::int64_t last_ms, std::int64_t now_ms, std::int64_t& ran_ms);
    void report_starved(std::size_t index, std::int64_t age_ms, std::int64_t ran_ms,
                        std::int64_t now_ms);
    void flush_starved(std::int64_t now_ms);

    std::vector<std::unique_ptr<worker>> workers_;
    std::atomic<std::int64_t> warn_after_ms_;
    std::atomic<std::uint64_t> stalls_{0};
    std::atomic<std::uint64_t> starvations_{0};
    std::atomic<std::size_t> stalled_now_{0};
    // Starvation lines are coalesced (the monitor's thread only): the first at once, then
    // at most one per 5 s with the count.
    std::int64_t starved_logged_ms_ = 0;
    std::uint64_t starved_unlogged_ = 0;
    std::int64_t starved_longest_ms_ = 0;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace plugd
