// host: the facilities the core offers plugins, one set for the whole process.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "host/manual_clock.hpp"
#include "host/offload_pool.hpp"
#include "host/shared_state.hpp"
#include "host/topic_hub.hpp"

namespace plugd {

/// Owned by the server, handed by the loader to every plugin version's context. Each
/// facility has its own file in core/host/; what a facility needs per version (its tasks,
/// its lease) lives in the version, what outlives versions (the offload threads, the
/// state of each instance) lives here. Adding a facility: a file here, a member here if it
/// has process-wide state, a virtual appended to plugd::context (SDK minor + 1), and its
/// implementation in plugins/plugin_context.cpp.
class host {
  public:
    struct settings {
        unsigned offload_threads = 1;
        std::size_t offload_queue = 1024;
        /// A worker's master pid: ctx.shared() is then the master's shared memory, one map
        /// per instance for all workers; 0 (a single plugd): this process's memory.
        long shared_memory_of_master = 0;
        /// server.json's `topics.max_message_bytes`: the largest message topics::publish takes.
        std::size_t topic_max_message_bytes = 65536;
    };

    /// `lease_released` runs, on any thread, whenever work of a version ends outside the
    /// request path (an offloaded job, a task): the server then looks for versions to unload.
    host(const settings& s, std::function<void()> lease_released);
    ~host();

    offload_pool& offload() noexcept { return offload_; }
    /// Control thread only.
    shared_state& state() noexcept { return state_; }
    const std::function<void()>& lease_released() const noexcept { return lease_released_; }

    /// The serving threads' event loops: the threads that run handlers and background
    /// tasks (plugd's shards, the test harness's own threads; the SDK's docs and the log
    /// call them worker threads, but in core/ a worker is a process of supervision/). For
    /// tasks started off them (from start(), on the control thread). Set once, before any
    /// plugin starts. The topics get a board per loop.
    void set_serving_loops(std::vector<boost::asio::io_context*> loops);
    /// Where a task started now runs: the calling serving thread's event loop when called
    /// on one (a task from a handler stays with its connection's thread), otherwise the
    /// next serving thread's in turn.
    boost::asio::any_io_executor task_executor();
    /// Serving threads call this once when they start, so task_executor() knows them.
    static void enter_serving_thread(boost::asio::io_context& io, std::size_t index) noexcept;
    /// The calling thread's index among the serving threads, or -1 when it is none.
    static std::ptrdiff_t serving_thread_index() noexcept;
    /// The calling serving thread's event loop, or null.
    static boost::asio::io_context* this_serving_loop() noexcept;
    std::size_t serving_threads() const noexcept { return serving_loops_.size(); }
    boost::asio::io_context& serving_loop(std::size_t index) const noexcept {
        return *serving_loops_[index];
    }

    /// The process's topics (context::topics): one board per serving loop. Any thread.
    topic_hub& topics() noexcept { return *topics_; }

    /// context::sleep_for and every's pause: real time, or `clock`'s once installed (the
    /// test harness's manual clock; set before any plugin loads, outlives the host).
    boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds duration);
    void use_manual_clock(manual_clock& clock) noexcept { manual_clock_ = &clock; }

    /// Shutdown, after the serving threads have stopped: drops queued jobs, waits for running ones
    /// until `deadline`. False when one was still running then.
    bool stop(std::chrono::steady_clock::time_point deadline) { return offload_.stop(deadline); }

  private:
    std::function<void()> lease_released_;
    offload_pool offload_;
    shared_state state_;
    std::vector<boost::asio::io_context*> serving_loops_;
    std::size_t topic_max_message_bytes_;
    /// Boards for serving_loops_ (none before set_serving_loops: a `plugd -t` check).
    std::unique_ptr<topic_hub> topics_;
    manual_clock* manual_clock_ = nullptr;
    std::atomic<unsigned> next_serving_loop_{0};  // off the request path: tasks start rarely
};

}  // namespace plugd
