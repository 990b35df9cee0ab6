// manual_clock: each sleeper waits on a timer that never expires by itself; advance()
// cancels it, marked as woken, on the sleeper's own executor.
#include "host/manual_clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

#include "host/suspension.hpp"

namespace plugd {

struct manual_clock::sleeper {
    explicit sleeper(const boost::asio::any_io_executor& ex, std::chrono::milliseconds at)
        : timer{ex, boost::asio::steady_timer::time_point::max()}, due{at} {}
    boost::asio::steady_timer timer;  ///< touched only on its executor
    std::chrono::milliseconds due;
    bool woken = false;  ///< set on the timer's executor, before it is cancelled
};

boost::asio::awaitable<void> manual_clock::sleep_for(std::chrono::milliseconds duration) {
    if (duration.count() <= 0) co_return;  // due now: as a timer set in the past
    std::shared_ptr<sleeper> me;
    {
        std::lock_guard lock{mutex_};
        me = std::make_shared<sleeper>(co_await boost::asio::this_coro::executor, now_ + duration);
        sleepers_.push_back(me);
    }
    before_suspend();
    auto [ec] = co_await me->timer.async_wait(boost::asio::as_tuple(boost::asio::deferred));
    if (me->woken) co_return;
    {
        std::lock_guard lock{mutex_};
        std::erase(sleepers_, me);
    }
    // Not woken: cancelled (a timeout, a drain, a task's version replaced).
    throw boost::system::system_error(ec ? ec : boost::asio::error::operation_aborted, "sleep_for");
}

void manual_clock::advance(std::chrono::milliseconds duration,
                           const std::function<void()>& settle) {
    settle();  // calls and tasks started just before reach their sleep first
    std::unique_lock lock{mutex_};
    const auto target = now_ + duration;
    for (;;) {
        auto next = std::min_element(sleepers_.begin(), sleepers_.end(),
                                     [](const auto& a, const auto& b) { return a->due < b->due; });
        if (next == sleepers_.end() || (*next)->due > target) break;
        now_ = std::max(now_, (*next)->due);
        std::vector<std::shared_ptr<sleeper>> due;
        std::erase_if(sleepers_, [&](const std::shared_ptr<sleeper>& s) {
            if (s->due > now_) return false;
            due.push_back(s);
            return true;
        });
        lock.unlock();
        for (auto& s : due) {
            boost::asio::post(s->timer.get_executor(), [s] {
                s->woken = true;
                s->timer.cancel();
            });
        }
        settle();
        lock.lock();
    }
    now_ = target;
}

std::chrono::milliseconds manual_clock::now() const {
    std::lock_guard lock{mutex_};
    return now_;
}

void manual_clock::forget_sleepers() {
    std::lock_guard lock{mutex_};
    sleepers_.clear();
}

std::size_t manual_clock::sleepers() const {
    std::lock_guard lock{mutex_};
    return sleepers_.size();
}

}  // namespace plugd
