// stall_monitor: the monitor thread, and the signal handler that samples a stalled worker.
#include "faults/stall_monitor.hpp"

#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "faults/running_code.hpp"
#include "log.hpp"

namespace plugd {
namespace {

using clock = std::chrono::steady_clock;

std::int64_t now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch())
        .count();
}

// A real-time signal nothing else in plugd (or Asio) uses, sent only to a stalled worker.
int sample_signal() noexcept {
    return SIGRTMIN + 4;
}

// Copies `from` into `to` (size `n`), always terminated; async-signal-safe.
void copy_name(char* to, std::size_t n, const char* from) noexcept {
    std::size_t i = 0;
    for (; from && from[i] && i + 1 < n; ++i) to[i] = from[i];
    to[i] = '\0';
}

// The CPU time a thread has used, by its clock (the calling thread's: CLOCK_THREAD_CPUTIME_ID).
std::int64_t cpu_ns(clockid_t clock) noexcept {
    timespec t{};
    if (::clock_gettime(clock, &t) != 0) return -1;
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

// Whether thread `tid` is runnable now ('R' in its stat: running, or ready and waiting for
// a CPU), rather than asleep in a system call.
bool runnable(pid_t tid) noexcept {
    const std::string file = "/proc/self/task/" + std::to_string(tid) + "/stat";
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char text[512];
    const ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return false;
    text[n] = '\0';
    const char* name_end = std::strrchr(text, ')');  // the name may hold spaces and ')'
    return name_end && name_end[1] == ' ' && name_end[2] == 'R';
}

}  // namespace

struct stall_monitor::worker {
    pthread_t thread{};
    std::atomic<bool> known{false};
    std::atomic<std::int64_t> last_beat_ms{0};
    // The monitor's own state (only its thread touches these).
    bool stalled = false;
    std::int64_t stalled_since_ms = 0;
    bool starved = false;  ///< this lateness was waiting for a CPU, not a stall
    pid_t tid = 0;         ///< published by `known`
    clockid_t cpu_clock{};
    bool has_cpu_clock = false;
    /// The worker's CPU time at its last beat (written before last_beat_ms, by the worker).
    std::atomic<std::int64_t> beat_cpu_ns{0};
    // A sample, written by the signal handler on the worker, read by the monitor after
    // `sampled` says so.
    enum : int { idle, asked, filled };
    std::atomic<int> sample_state{idle};
    char plugin[80]{};
    std::uint64_t generation = 0;
    char listener[80]{};
    char peer[80]{};
    void* frames[32]{};
    int frame_count = 0;
    sem_t sampled;  ///< posted by the handler (sem_post is async-signal-safe)
    worker() { ::sem_init(&sampled, 0, 0); }
    ~worker() { ::sem_destroy(&sampled); }
};

namespace {

// Which worker the signal handler's thread is.
thread_local stall_monitor::worker* this_worker = nullptr;

void on_sample_signal(int) {
    const int saved_errno = errno;
    struct restore {
        int e;
        ~restore() { errno = e; }
    } keep{saved_errno};
    stall_monitor::worker* w = this_worker;
    if (!w || w->sample_state.load(std::memory_order_acquire) != stall_monitor::worker::asked)
        return;
    const running_code& runs = this_thread_runs();
    copy_name(w->plugin, sizeof w->plugin, runs.plugin);
    w->generation = runs.generation;
    copy_name(w->listener, sizeof w->listener, runs.listener);
    copy_name(w->peer, sizeof w->peer, runs.peer);
    w->frame_count = ::backtrace(w->frames, 32);
    w->sample_state.store(stall_monitor::worker::filled, std::memory_order_release);
    ::sem_post(&w->sampled);
}

std::string describe(const stall_monitor::worker& w) {
    if (!w.plugin[0]) return "in the core (no request's plugin code was running there)";
    std::string what =
        "in plugin " + std::string{w.plugin} + " generation " + std::to_string(w.generation);
    if (w.peer[0])
        what += " (request from " + std::string{w.peer} + " on listener " + w.listener + ")";
    return what;
}

}  // namespace

stall_monitor::stall_monitor(std::size_t workers, std::chrono::milliseconds warn_after)
    : warn_after_ms_{warn_after.count()} {
    for (std::size_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<worker>());
    struct sigaction action {};
    action.sa_handler = on_sample_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    ::sigaction(sample_signal(), &action, nullptr);
    void* warm[1];
    ::backtrace(warm, 1);  // loads the unwinder now, not in the handler
    thread_ = std::thread{[this] { run(); }};
}

stall_monitor::~stall_monitor() {
    {
        std::lock_guard lock{mutex_};
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void stall_monitor::watch_this_thread(std::size_t index) noexcept {
    worker& w = *workers_[index];
    this_worker = &w;
    w.thread = ::pthread_self();
    w.tid = ::gettid();
    w.has_cpu_clock = ::pthread_getcpuclockid(w.thread, &w.cpu_clock) == 0;
    w.beat_cpu_ns.store(cpu_ns(CLOCK_THREAD_CPUTIME_ID), std::memory_order_relaxed);
    w.last_beat_ms.store(now_ms(), std::memory_order_relaxed);
    w.known.store(true, std::memory_order_release);
}

void stall_monitor::beat(std::size_t index) noexcept {
    worker& w = *workers_[index];
    // Its CPU time with the stamp: the monitor tells a worker that ran (a stall) from one
    // that was not scheduled (starved) by how much of it went by since.
    w.beat_cpu_ns.store(cpu_ns(CLOCK_THREAD_CPUTIME_ID), std::memory_order_relaxed);
    w.last_beat_ms.store(now_ms(), std::memory_order_release);
}

void stall_monitor::stop_watching(std::size_t index) noexcept {
    workers_[index]->known.store(false, std::memory_order_release);
}

std::chrono::milliseconds stall_monitor::beat_interval() const noexcept {
    const auto quarter = warn_after_ms_.load(std::memory_order_relaxed) / 4;
    return std::chrono::milliseconds{std::clamp<std::int64_t>(quarter, 10, 1000)};
}

void stall_monitor::set_warn_after(std::chrono::milliseconds warn_after) noexcept {
    warn_after_ms_.store(warn_after.count(), std::memory_order_relaxed);
}

void stall_monitor::run() {
    for (;;) {
        {
            std::unique_lock lock{mutex_};
            wake_.wait_for(lock, beat_interval(), [this] { return stopping_; });
            if (stopping_) return;
        }
        const std::int64_t threshold = warn_after_ms_.load(std::memory_order_relaxed);
        const std::int64_t now = now_ms();
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            worker& w = *workers_[i];
            if (!w.known.load(std::memory_order_acquire)) {
                // No longer watched (shut down): not stalled any more either.
                if (std::exchange(w.stalled, false) && !std::exchange(w.starved, false))
                    stalled_now_.fetch_sub(1, std::memory_order_relaxed);
                continue;
            }
            const std::int64_t last = w.last_beat_ms.load(std::memory_order_acquire);
            if (!w.stalled && now - last > threshold) {
                std::int64_t ran_ms = 0;
                const bool starved = waited_for_cpu(w, last, now, ran_ms);
                if (w.last_beat_ms.load(std::memory_order_acquire) != last) {
                    // It came back while we looked: not stalled now, and its CPU stamp may
                    // be the new beat's, which would make it look starved: report nothing.
                    continue;
                }
                w.stalled = true;
                w.stalled_since_ms = last;
                w.starved = starved;
                if (starved) {
                    starvations_.fetch_add(1, std::memory_order_relaxed);
                    report_starved(i, now - last, ran_ms, now);
                } else {
                    stalls_.fetch_add(1, std::memory_order_relaxed);
                    stalled_now_.fetch_add(1, std::memory_order_relaxed);  // before its line
                    report_start(i, w, now - last);
                }
            } else if (w.stalled && w.starved && last == w.stalled_since_ms) {
                // Still late: once it has had a CPU and runs on (a handler busy or blocked
                // after the wait), it is a stall after all.
                std::int64_t ran_ms = 0;
                if (!waited_for_cpu(w, last, now, ran_ms) &&
                    w.last_beat_ms.load(std::memory_order_acquire) == last) {
                    w.starved = false;
                    stalls_.fetch_add(1, std::memory_order_relaxed);
                    stalled_now_.fetch_add(1, std::memory_order_relaxed);
                    report_start(i, w, now - last);
                }
            } else if (w.stalled && last != w.stalled_since_ms) {
                w.stalled = false;
                if (!std::exchange(w.starved, false)) {
                    stalled_now_.fetch_sub(1, std::memory_order_relaxed);  // before its line
                    report_end(i, w, last - w.stalled_since_ms);
                }
            }
        }
        flush_starved(now_ms());
    }
}

bool stall_monitor::waited_for_cpu(worker& w, std::int64_t last, std::int64_t now,
                                   std::int64_t& ran_ms) {
    if (!w.has_cpu_clock) return false;
    // The state first: a worker that is given its CPU in between is back by the time the
    // caller looks at its beat again.
    const bool ready = runnable(w.tid);
    const std::int64_t cpu_now = cpu_ns(w.cpu_clock);
    const std::int64_t cpu_then = w.beat_cpu_ns.load(std::memory_order_relaxed);
    if (cpu_now < 0 || cpu_then < 0) return false;
    ran_ms = (cpu_now - cpu_then) / 1'000'000;
    const std::int64_t late_ms = now - last;
    // Runnable (running, or ready and waiting for a CPU), yet it ran for less than a quarter of
    // the time: it waited for a CPU. A thread asleep in a system call is not runnable, and
    // one busy in a handler ran: both are stalls.
    // (A quarter, not a half: a busy handler sharing a loaded machine's CPUs with three
    // others is still a stall.)
    return ready && ran_ms * 4 < late_ms;
}

void stall_monitor::report_starved(std::size_t index, std::int64_t age_ms, std::int64_t ran_ms,
                                   std::int64_t now) {
    starved_longest_ms_ = std::max(starved_longest_ms_, age_ms);
    if (starved_logged_ms_ != 0 && now - starved_logged_ms_ < 5000) {
        ++starved_unlogged_;
        return;
    }
    starved_logged_ms_ = now;
    starved_longest_ms_ = 0;
    log::warn("starved: worker thread " + std::to_string(index) + " was " + std::to_string(age_ms) +
                  " ms late to its event loop (stall_warn_ms " +
                  std::to_string(warn_after_ms_.load(std::memory_order_relaxed)) +
                  ") because it waited for a CPU: ready to run, it ran for " +
                  std::to_string(ran_ms) +
                  " ms of them. Not a stall (no code of plugd or a plugin held it): the machine or "
                  "container is short of CPU for plugd's threads; further ones are counted "
                  "in one line per 5 s",
              {log::tag("thread", std::to_string(index))});
}

void stall_monitor::flush_starved(std::int64_t now) {
    if (starved_unlogged_ == 0 || now - starved_logged_ms_ < 5000) return;
    log::warn("starved: " + std::to_string(starved_unlogged_) +
              " more times in the last 5 s a worker thread was late to its event loop because "
              "it waited for a CPU (the longest " +
              std::to_string(starved_longest_ms_) + " ms); not stalls");
    starved_logged_ms_ = now;
    starved_unlogged_ = 0;
    starved_longest_ms_ = 0;
}

void stall_monitor::report_start(std::size_t index, worker& w, std::int64_t age_ms) {
    while (::sem_trywait(&w.sampled) == 0) {
    }  // a late answer to an earlier stall
    w.sample_state.store(worker::asked, std::memory_order_release);
    bool sampled = false;
    if (::pthread_kill(w.thread, sample_signal()) == 0) {
        // The handler runs as soon as the worker's thread is scheduled again.
        timespec deadline{};
        ::clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 100'000'000;
        if (deadline.tv_nsec >= 1'000'000'000) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1'000'000'000;
        }
        while (::sem_timedwait(&w.sampled, &deadline) != 0 && errno == EINTR) {
        }
        sampled = w.sample_state.load(std::memory_order_acquire) == worker::filled;
    }
    w.sample_state.store(worker::idle, std::memory_order_release);
    if (!sampled) {
        w.plugin[0] = '\0';
        w.frame_count = 0;
    }
    const std::string threshold = std::to_string(warn_after_ms_.load(std::memory_order_relaxed));
    const std::string where = sampled ? describe(w) : "(it did not answer the sampling signal)";
    log::warn("stall: worker thread " + std::to_string(index) +
                  " has not returned to its event loop for " + std::to_string(age_ms) +
                  " ms (stall_warn_ms " + threshold + "); it is " + where +
                  "; every connection on this thread waits: move blocking work to "
                  "ctx.offload()",
              {log::tag("plugin", w.plugin), log::tag("thread", std::to_string(index)),
               log::tag("listener", w.listener), log::tag("peer", w.peer)});
    if (w.frame_count > 0) {
        char** symbols = ::backtrace_symbols(w.frames, w.frame_count);
        std::string trace = "stall: worker thread " + std::to_string(index) + " backtrace:";
        for (int i = 0; symbols && i < w.frame_count; ++i) (trace += "\n    ") += symbols[i];
        std::free(symbols);
        log::debug(trace);
    }
}

void stall_monitor::report_end(std::size_t index, worker& w, std::int64_t total_ms) {
    log::warn("stall ended: worker thread " + std::to_string(index) + " was stalled for " +
                  std::to_string(total_ms) + " ms, " + describe(w),
              {log::tag("plugin", w.plugin), log::tag("thread", std::to_string(index)),
               log::tag("stall_ms", std::to_string(total_ms))});
}

}  // namespace plugd
