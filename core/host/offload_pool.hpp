// offload_pool: the core's threads for blocking work (context::offload).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace plugd {

/// A fixed set of threads and a bounded queue. Blocking plugin work (a database call, a
/// file read) runs here so that no io_context thread ever blocks. Not on the request path:
/// a request that offloads pays one lock here, one that does not pays nothing.
class offload_pool {
  public:
    /// Starts `threads` threads; at most `queue_limit` jobs wait for one.
    offload_pool(unsigned threads, std::size_t queue_limit);
    /// Stops: see stop().
    ~offload_pool();

    offload_pool(const offload_pool&) = delete;
    offload_pool& operator=(const offload_pool&) = delete;

    /// Queues `job`. False, and `job` untouched, when the queue is full or the pool stopped.
    /// Thread-safe. `job` must not throw (the SDK's wrapper catches for it).
    bool submit(std::function<void()>& job);

    /// Drops the jobs still queued (their requests were cancelled by the shutdown that
    /// calls this), lets running ones finish, and joins the threads. Returns false when a
    /// job was still running at `deadline` (its thread is then left running).
    bool stop(std::chrono::steady_clock::time_point deadline);

    unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }
    std::size_t queue_limit() const noexcept { return limit_; }

  private:
    void work();

    std::size_t limit_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::deque<std::function<void()>> queue_;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace plugd
