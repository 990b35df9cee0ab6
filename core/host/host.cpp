// host: worker executors for tasks, and the process-wide facilities' state.
#include "host/host.hpp"

#include "host/timers.hpp"

namespace plugd {
namespace {

// The event loop the calling thread runs, if it is a worker thread.
thread_local boost::asio::io_context* this_worker = nullptr;
thread_local std::ptrdiff_t this_worker_number = -1;

}  // namespace

host::host(const settings& s, std::function<void()> lease_released)
    : lease_released_{std::move(lease_released)}, offload_{s.offload_threads, s.offload_queue} {}

void host::enter_worker(boost::asio::io_context& io, std::size_t index) noexcept {
    this_worker = &io;
    this_worker_number = static_cast<std::ptrdiff_t>(index);
}

std::ptrdiff_t host::this_worker_index() noexcept {
    return this_worker_number;
}

boost::asio::awaitable<void> host::sleep_for(std::chrono::milliseconds duration) {
    if (manual_clock_) return manual_clock_->sleep_for(duration);
    return plugd::sleep_for(duration);
}

boost::asio::any_io_executor host::task_executor() {
    if (this_worker) return this_worker->get_executor();
    const unsigned i = next_worker_.fetch_add(1, std::memory_order_relaxed);
    return workers_[i % workers_.size()]->get_executor();
}

}  // namespace plugd
