// plugd::context: what the core offers a plugin instance (its config, a logger, timers).
#pragma once

#include <chrono>
#include <string_view>

#include <nlohmann/json.hpp>
#include <plugd/task.hpp>

namespace plugd {

/// Severity of a log line.
enum class log_level { debug, info, warn, error };

/// The services the core gives one plugin instance. Implemented in the core: a plugin only
/// calls it. Every asynchronous facility lives here (not in the plugin) because an Asio I/O
/// object created by plugin code registers plugin code into the core's event loop, which
/// crashes the server once the plugin is unloaded.
///
/// Lifetime: outlives the handler constructed from it; keep a reference, not a copy.
/// Thread-safety: every member may be called concurrently from any worker thread.
class context {
  public:
    /// This instance's `config` object from server.json (`/plugins/<name>/config`); an empty
    /// object when server.json gives none. Read it in the handler's constructor and throw
    /// `std::invalid_argument` with a message naming the key when a value is unusable.
    virtual const nlohmann::json& config() const noexcept = 0;

    /// The instance name (the key under `/plugins` in server.json).
    virtual std::string_view instance_name() const noexcept = 0;

    /// Writes one line to the server log, prefixed with the instance name. Does not throw.
    virtual void log(log_level level, std::string_view message) const noexcept = 0;

    /// Suspends the calling coroutine for `duration` without holding a thread. Call it only
    /// from within `handler::handle` (it runs on the worker thread of that connection).
    /// Throws `boost::system::system_error` (operation_aborted) when the request is
    /// cancelled, e.g. by a timeout or a reload drain that ran out of time: let it propagate.
    virtual task<void> sleep_for(std::chrono::milliseconds duration) const = 0;

  protected:
    ~context() = default;
};

}  // namespace plugd
