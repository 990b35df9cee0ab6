// host: where tasks run (the serving threads' event loops), and the process-wide
// facilities' state.
#include "host/host.hpp"

#include "host/timers.hpp"

namespace plugd {
namespace {

// The event loop the calling thread runs, and its index, if it is a serving thread.
thread_local boost::asio::io_context* loop_of_this_thread = nullptr;
thread_local std::ptrdiff_t this_serving_index = -1;

}  // namespace

host::host(const settings& s, std::function<void()> lease_released)
    : lease_released_{std::move(lease_released)},
      offload_{s.offload_threads, s.offload_queue},
      state_{s.shared_memory_of_master != 0 ? shared_state::placement::segments_of_master
                                            : shared_state::placement::in_process,
             s.shared_memory_of_master},
      topic_max_message_bytes_{s.topic_max_message_bytes},
      topics_{std::make_unique<topic_hub>(std::vector<boost::asio::io_context*>{},
                                          topic_max_message_bytes_)} {}

host::~host() = default;

void host::set_serving_loops(std::vector<boost::asio::io_context*> loops) {
    serving_loops_ = std::move(loops);
    topics_ = std::make_unique<topic_hub>(serving_loops_, topic_max_message_bytes_);
}

void host::enter_serving_thread(boost::asio::io_context& io, std::size_t index) noexcept {
    loop_of_this_thread = &io;
    this_serving_index = static_cast<std::ptrdiff_t>(index);
}

std::ptrdiff_t host::serving_thread_index() noexcept {
    return this_serving_index;
}

boost::asio::io_context* host::this_serving_loop() noexcept {
    return loop_of_this_thread;
}

boost::asio::awaitable<void> host::sleep_for(std::chrono::milliseconds duration) {
    if (manual_clock_) return manual_clock_->sleep_for(duration);
    // A serving thread's coroutines run on its own loop.
    if (loop_of_this_thread) return plugd::sleep_for(loop_of_this_thread->get_executor(), duration);
    return plugd::sleep_for(duration);
}

boost::asio::any_io_executor host::task_executor() {
    if (loop_of_this_thread) return loop_of_this_thread->get_executor();
    const unsigned i = next_serving_loop_.fetch_add(1, std::memory_order_relaxed);
    return serving_loops_[i % serving_loops_.size()]->get_executor();
}

}  // namespace plugd
