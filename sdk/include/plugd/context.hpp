// plugd::context: what the core offers a plugin instance: its config, a logger, timers,
// state that survives reloads, background tasks, offloaded blocking work, outbound
// connections and topics.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>
#include <plugd/shared_map.hpp>
#include <plugd/stream.hpp>
#include <plugd/task.hpp>
#include <plugd/tls_options.hpp>
#include <plugd/topics.hpp>

namespace plugd {

/// Severity of a log line.
enum class log_level { debug, info, warn, error };

namespace detail {
template <typename R>
struct offload_outcome;
}  // namespace detail

/// Thrown by `context::offload` when the offload queue is full (`offload_queue` in
/// server.json). Let it propagate: the client gets `ERR busy` instead of `ERR internal
/// error`, and the log says which plugin.
class busy : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// The services the core gives one plugin instance. Implemented in the core: a plugin only
/// calls it. Every asynchronous facility lives here (not in the plugin) because an Asio I/O
/// object or a thread created by plugin code can outlive the plugin's library, and the
/// server crashes when it runs code that was unloaded. The core keeps a version loaded
/// while anything started through its context still runs (requests, tasks, offloaded jobs).
///
/// Lifetime: one per loaded version; outlives the handler constructed from it; keep a
/// reference, not a copy. Thread-safety: every member may be called concurrently from any
/// thread.
///
/// Growth: members are only ever appended (see `version.hpp`); each says since when.
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

    /// Suspends the calling coroutine for `duration` without holding a thread. Call it from
    /// `handle` or a background task; it resumes on the same worker thread. Throws
    /// `boost::system::system_error` (operation_aborted) when the request or task is
    /// cancelled (a timeout, a reload drain that ran out of time, a task's version being
    /// replaced): let it propagate.
    virtual task<void> sleep_for(std::chrono::milliseconds duration) const = 0;

    // ---- since SDK 1.1 ----

    /// This instance's state that survives reloads: see `shared_map`. The same object for
    /// every version of the instance; usable from the constructor on.
    virtual shared_map& shared() const noexcept = 0;

    /// Runs `work` in the background on a worker thread until it returns or this version
    /// is replaced or the server stops: then its pending `sleep_for` (or other context
    /// call) throws operation_aborted; let it propagate. `name` identifies it in the log
    /// (its failure, or its refusal to stop when the drain timeout ends). Call it from
    /// `start()` or `handle()` (not the constructor: throws std::logic_error). A task
    /// spawned from `handle()` runs on that request's worker thread and outlives the
    /// request. The core awaits every task before it calls this version's `stop()`.
    /// @warning `work` must not capture the `request` or the `reply`: they die with the
    /// request.
    virtual void spawn(task<void> work, std::string_view name) const = 0;

    /// Calls `work` every `interval` (the first call one interval from now), in the
    /// background, as `spawn` does: one call at a time, the next interval counted from the
    /// end of the previous call. An exception from `work` is logged with `name` and the
    /// schedule goes on; cancellation ends it.
    virtual void every(std::chrono::milliseconds interval, std::function<task<void>()> work,
                       std::string_view name) const = 0;

    /// Runs `job` (blocking work: a database call, a file read, a computation) on one of
    /// the core's offload threads (`offload_threads` in server.json) and resumes the caller
    /// on its own worker thread with the result, or rethrows the exception `job` threw.
    /// The worker thread serves other clients meanwhile. Throws `plugd::busy` when
    /// `offload_queue` jobs are already waiting. A cancelled caller (timeout, drain) stops
    /// waiting at once and gets operation_aborted; `job` itself runs to completion, its
    /// result is dropped, and the version stays loaded until it has returned.
    /// Call it from `handle` or a background task. `job` is copied before `offload` returns
    /// (a lambda that captures nothing but plain values may also be written in place); a
    /// job that cannot be copied can be held through a `std::shared_ptr`.
    /// @warning `job` runs on another thread, possibly after the request has ended: capture
    /// by value, never the `request`, the `reply` or other references into the request.
    /// @warning GCC 12 (Debian 12's compiler) destroys a lambda written inside a `co_await`
    /// expression twice; with captures that own memory (a string, a shared_ptr) that is a
    /// double free. Name such a lambda first: `auto job = [key] { ... };
    /// co_await ctx.offload(job);` A compile-time check refuses the other form.
    template <typename F>
    task<std::invoke_result_t<std::decay_t<F>&>> offload(F&& job) const;

    /// Opens a TCP connection to `host` (a name, resolved asynchronously, or a numeric
    /// address) and `port`, or takes an idle one from this instance's pool (see
    /// `stream::recycle`), and returns it. Its I/O runs on the caller's worker thread; it
    /// must not outlive the `handle` call or task that opened it (keep it in the coroutine,
    /// not in the handler). `connect_timeout_ms` bounds connecting; resolving a name runs
    /// the system resolver, which a timeout cannot interrupt: use numeric addresses where
    /// a slow DNS server must not delay requests.
    /// Limits come from `/plugins/<name>/outbound` in server.json: `connect_timeout_ms`
    /// (default 1000), `io_timeout_ms` per read or write (default 5000), `max_idle` pooled
    /// connections per host and port and worker thread (default 32). Throws
    /// `boost::system::system_error` naming the host, the port and the failure. The pool
    /// is closed when this version is replaced. Call it from `handle` or a background task.
    virtual task<std::unique_ptr<stream>> connect(std::string_view host,
                                                  std::uint16_t port) const = 0;

  protected:
    ~context() = default;

    /// What `offload` calls: runs `job` (which never throws) on an offload thread.
    virtual task<void> run_offloaded(std::function<void()> job) const = 0;

    // New virtual members go here, after run_offloaded (reopen `public:` for them): the
    // slots of every earlier member must keep their places (see version.hpp).

  public:
    // ---- since SDK 1.4 ----

    /// `connect(host, port)` secured by `tls` (see `tls_options`): the TLS handshake,
    /// like connecting, within `connect_timeout_ms`; each read and write within
    /// `io_timeout_ms`. A pooled connection is reused only for the same host, port and
    /// TLS options. With `tls.enabled` false it is `connect(host, port)`. Throws
    /// `boost::system::system_error` naming the host, the port and what failed (a
    /// certificate that does not verify, a CA file that cannot be read, a timeout).
    ///     plugd::tls_options tls{.enabled = true, .ca_file = "ca.pem"};
    ///     auto redis = co_await ctx.connect("redis.internal", 6380, tls);
    /// (GCC and Clang lay out virtual overloads in declaration order, so this overload
    /// appended here leaves every earlier slot where it was.)
    virtual task<std::unique_ptr<stream>> connect(std::string_view host, std::uint16_t port,
                                                  const tls_options& tls) const = 0;

    // ---- since SDK 1.5 ----

    /// The process's topics (see `topics`): publish from anywhere, subscribe a connection
    /// from its serve(). The same object for every instance and version, alive as long as
    /// the process; usable from the constructor on (a publish from a trial load reaches
    /// nobody).
    virtual plugd::topics& topics() const noexcept = 0;

  protected:
  private:
    template <typename R>
    task<R> finish_offload(std::function<void()> wrapped,
                           std::shared_ptr<detail::offload_outcome<R>> state) const;
};

namespace detail {
/// What an offloaded job leaves for its caller; shared with the job, so a caller that
/// stopped waiting never leaves the job writing into a destroyed coroutine frame.
template <typename R>
struct offload_outcome {
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
    std::exception_ptr error;
};
}  // namespace detail

// Not a coroutine: the job is copied before offload() returns, so the task it returns owns
// everything it needs even when awaited later.
template <typename F>
task<std::invoke_result_t<std::decay_t<F>&>> context::offload(F&& job) const {
    using job_type = std::decay_t<F>;
    static_assert(std::is_lvalue_reference_v<F> || std::is_trivially_destructible_v<job_type>,
                  "plugd::context::offload: name this lambda before the co_await (auto job = "
                  "[...] { ... }; co_await ctx.offload(job);): GCC 12 destroys a lambda with "
                  "owning captures written inside a co_await expression twice");
    using result = std::invoke_result_t<job_type&>;
    auto state = std::make_shared<detail::offload_outcome<result>>();
    // std::function needs a copyable target: the job is held through a shared_ptr.
    auto shared_job = std::make_shared<job_type>(std::forward<F>(job));
    std::function<void()> wrapped = [state, shared_job] {
        try {
            if constexpr (std::is_void_v<result>) {
                (*shared_job)();
            } else {
                state->value.emplace((*shared_job)());
            }
        } catch (...) {
            state->error = std::current_exception();
        }
    };
    return finish_offload<result>(std::move(wrapped), std::move(state));
}

template <typename R>
task<R> context::finish_offload(std::function<void()> wrapped,
                                std::shared_ptr<detail::offload_outcome<R>> state) const {
    co_await run_offloaded(std::move(wrapped));
    if (state->error) std::rethrow_exception(state->error);
    if constexpr (!std::is_void_v<R>) co_return std::move(*state->value);
}

}  // namespace plugd
