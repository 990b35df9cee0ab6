// task_group: spawning, cancelling and reporting a version's background tasks.
#include "host/task_group.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include "log.hpp"

namespace plugd {

namespace asio = boost::asio;

asio::awaitable<void> logging_failures(asio::awaitable<void> work, std::string owner,
                                       std::string what) {
    try {
        co_await std::move(work);
    } catch (const boost::system::system_error& s) {
        if (s.code() != asio::error::operation_aborted) {
            log::error(owner + ": " + what + " failed: " + s.what());
        }
    } catch (const std::exception& x) {
        log::error(owner + ": " + what + " failed: " + x.what());
    } catch (...) {
        log::error(owner + ": " + what + " threw a non-standard exception");
    }
}

void task_group::spawn(asio::any_io_executor ex, asio::awaitable<void> work, std::string name,
                       version_lease lease) {
    auto e = std::make_shared<entry>();
    e->name = std::move(name);
    e->executor = ex;
    {
        std::lock_guard lock{mutex_};
        tasks_.push_back(e);
    }
    // Started from the task's own thread, so its cancellation signal is only ever used there.
    asio::post(ex, [this, e, work = std::move(work), lease = std::move(lease)]() mutable {
        auto done = [this, e, lease = std::move(lease)](std::exception_ptr) mutable {
            {
                std::lock_guard lock{mutex_};
                tasks_.remove(e);
            }
            lease.release();  // last: the version may be unloaded from here on
        };
        asio::co_spawn(e->executor, logging_failures(std::move(work), owner_, "task " + e->name),
                       asio::bind_cancellation_slot(e->signal.slot(), std::move(done)));
        // A cancel_all() between the registration above and now posted its emit before
        // the slot existed: look again, now that it does.
        bool cancelled = false;
        {
            std::lock_guard lock{mutex_};
            cancelled = cancelled_;
        }
        if (cancelled) e->signal.emit(asio::cancellation_type::terminal);
    });
}

void task_group::cancel_all() {
    std::lock_guard lock{mutex_};
    cancelled_ = true;
    for (const auto& e : tasks_) {
        asio::post(e->executor, [e] { e->signal.emit(asio::cancellation_type::terminal); });
    }
}

std::vector<std::string> task_group::running() const {
    std::lock_guard lock{mutex_};
    std::vector<std::string> names;
    for (const auto& e : tasks_) names.push_back(e->name);
    return names;
}

}  // namespace plugd
