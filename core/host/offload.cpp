// offload: a job on the pool, a timer on the caller's thread as its completion signal.
#include "host/offload.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <plugd/context.hpp>

#include "host/suspension.hpp"

namespace plugd {

namespace asio = boost::asio;

namespace {

// Lives on the caller's thread; the job only posts there to touch it. A timer that never
// expires by itself is the wake-up: cancelling it resumes the waiting coroutine, and the
// request's own cancellation reaches the same wait.
struct completion {
    explicit completion(const asio::any_io_executor& ex)
        : wake{ex, asio::steady_timer::time_point::max()} {}
    asio::steady_timer wake;
    bool done = false;
};

}  // namespace

asio::awaitable<void> run_offloaded(offload_pool& pool, std::function<void()> job,
                                    version_lease lease, const std::string& owner) {
    const auto ex = co_await asio::this_coro::executor;
    auto state = std::make_shared<completion>(ex);
    // std::function wants a copyable target; the lease is not copyable, a pointer to it is.
    auto held = std::make_shared<version_lease>(std::move(lease));
    std::function<void()> queued = [job = std::move(job), held, ex, state]() mutable {
        job();
        job = nullptr;    // the plugin's captures go first, while its version is leased
        held->release();  // then the lease: the version may be unloaded from here on
        // The state moves into the posted handler: this thread must not be the one to
        // destroy a timer of the caller's io_context.
        asio::post(ex, [state = std::move(state)] {
            state->done = true;
            state->wake.cancel();
        });
    };
    if (!pool.submit(queued)) {
        throw busy("plugin instance " + owner + ": the offload queue is full (" +
                   std::to_string(pool.queue_limit()) +
                   " jobs waiting, /offload_queue); the request was refused");
    }
    before_suspend();
    co_await state->wake.async_wait(asio::as_tuple(asio::deferred));
    if (!state->done) {
        throw boost::system::system_error(asio::error::operation_aborted,
                                          "offloaded job abandoned: the request was cancelled");
    }
}

}  // namespace plugd
