// task_group: the background tasks of one plugin version (context::spawn, context::every).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "host/version_lease.hpp"

namespace plugd {

/// Awaits `work` and logs its failure as "<owner>: <what> failed: <why>" (a cancellation
/// is no failure); never throws. A plugin's exception, whose type and destructor may be
/// the plugin's, so ends in core code while the caller still holds the plugin loaded.
boost::asio::awaitable<void> logging_failures(boost::asio::awaitable<void> work, std::string owner,
                                              std::string what);

/// Tasks run as coroutines on the serving threads' io_contexts, each holding a lease on its
/// version. When the version is replaced (or the server stops), cancel_all() delivers a
/// terminal cancellation to each on its own thread: the task's pending `sleep_for` (or any
/// host operation) throws, the task ends, its lease goes. The version's stop() runs only
/// after the last one has ended.
/// Thread-safe: tasks may be spawned from any thread (start() on the control thread, a
/// handler on a serving thread).
class task_group {
  public:
    /// `owner` names the instance and version in log lines.
    explicit task_group(std::string owner) : owner_{std::move(owner)} {}

    /// Runs `work` on `ex` until it returns, throws or is cancelled. After cancel_all() a
    /// new task is cancelled as soon as it starts.
    void spawn(boost::asio::any_io_executor ex, boost::asio::awaitable<void> work, std::string name,
               version_lease lease);

    /// Asks every task to stop. Returns at once; tasks end on their own threads.
    void cancel_all();

    /// The names of the tasks still running (for the drain timeout's report).
    std::vector<std::string> running() const;

  private:
    struct entry {
        std::string name;
        boost::asio::any_io_executor executor;
        boost::asio::cancellation_signal signal;  ///< touched only on `executor`'s thread
    };

    std::string owner_;
    mutable std::mutex mutex_;
    std::list<std::shared_ptr<entry>> tasks_;
    bool cancelled_ = false;
};

}  // namespace plugd
