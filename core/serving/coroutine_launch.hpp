// coroutine_launch: starts a connection's coroutine (its serving loop, a WebSocket session)
// with less than asio::co_spawn needs, because a connection keeps what starts its coroutine
// for as long as the coroutine waits: an idle session, a request held on a timer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_state.hpp>

#include <exception>
#include <utility>

namespace plugd {

namespace coroutine_launch_detail {

namespace asio = boost::asio;
using entry_point = asio::awaitable<asio::detail::awaitable_thread_entry_point>;

// The bottom of the coroutine's stack: awaits `work`, then tells `done` how it ended. Its
// frame holds these and Asio's bookkeeping only (co_spawn's entry point also holds two
// work guards, its handler's executor and the steps of a dispatch and a post: about 480
// bytes against about 220 here). It runs on Asio's own awaitable thread, which is
// asio::detail: Boost 1.81's (Debian 12's), to be checked again on a Boost upgrade.
template <class Done>
entry_point run_then(asio::awaitable<void> work, Done done) {
    std::exception_ptr error;
    try {
        co_await std::move(work);
    } catch (...) {
        error = std::current_exception();
    }
    done(error);
}

template <class Done>
entry_point run_then(asio::awaitable<bool> work, Done done) {
    std::exception_ptr error;
    bool result = false;
    try {
        result = co_await std::move(work);
    } catch (...) {
        error = std::current_exception();
    }
    done(error, result);
}

}  // namespace coroutine_launch_detail

/// Starts `work` on `ex` at once (the caller is on `ex`'s thread), as co_spawn does, and
/// calls `done(std::exception_ptr)` (for awaitable<bool>: `done(std::exception_ptr, bool)`)
/// when it ends, from inside its last step, on that thread; `done` must not throw. A
/// signal emitted on `slot` cancels what `work` awaits then, as a cancellation slot bound
/// to co_spawn's handler does; clear the slot only after `done`. Unlike co_spawn:
/// - `done` may run inside this call, when `work` ends without ever waiting: it must not
///   destroy what the caller still uses (post the destruction);
/// - nothing counts as outstanding work of the io_context: the operation `work` awaits
///   does, and the caller keeps the context running otherwise (a shard's work guard);
/// - the cancellation state is installed in `slot` itself, not in a proxy: one allocation
///   (reused when the slot's signal is used again) instead of two.
template <class T, class Done>
void launch_coroutine(const boost::asio::any_io_executor& ex, boost::asio::awaitable<T> work,
                      boost::asio::cancellation_slot slot, Done done) {
    namespace asio = boost::asio;
    asio::cancellation_state state{slot};
    asio::detail::awaitable_thread<asio::any_io_executor> thread{
        coroutine_launch_detail::run_then(std::move(work), std::move(done)), ex, slot, state};
    thread.launch();
}

}  // namespace plugd
