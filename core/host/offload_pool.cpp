// offload_pool: threads, a bounded queue, and a shutdown that never waits forever.
#include "host/offload_pool.hpp"

#include "faults/crash_report.hpp"

namespace plugd {

offload_pool::offload_pool(unsigned threads, std::size_t queue_limit) : limit_{queue_limit} {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

offload_pool::~offload_pool() {
    stop(std::chrono::steady_clock::time_point::max());
}

bool offload_pool::submit(std::function<void()>& job) {
    {
        std::lock_guard lock{mutex_};
        if (stopping_ || queue_.size() >= limit_) return false;
        queue_.push_back(std::move(job));
    }
    wake_.notify_one();
    return true;
}

void offload_pool::work() {
    prepare_thread_for_crash_report();  // plugin code runs here too
    std::unique_lock lock{mutex_};
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        auto job = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        lock.unlock();
        job();
        job = nullptr;  // its captures (plugin code, the version's lease) go here, unlocked
        lock.lock();
        --running_;
        idle_.notify_all();
    }
}

bool offload_pool::stop(std::chrono::steady_clock::time_point deadline) {
    std::deque<std::function<void()>> dropped;
    {
        std::unique_lock lock{mutex_};
        if (threads_.empty()) return true;
        stopping_ = true;
        dropped.swap(queue_);
    }
    wake_.notify_all();
    dropped.clear();  // outside the lock: destroying a job releases its version's lease
    {
        std::unique_lock lock{mutex_};
        const auto done = [this] { return running_ == 0; };
        if (deadline == std::chrono::steady_clock::time_point::max()) {
            idle_.wait(lock, done);  // wait_until would overflow converting max
        } else if (!idle_.wait_until(lock, deadline, done)) {
            for (auto& t : threads_) t.detach();
            threads_.clear();
            return false;
        }
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    return true;
}

}  // namespace plugd
