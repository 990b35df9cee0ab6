// suspension: the moment a facility may suspend the request that calls it.
//
// A connection answers the requests a client pipelined in one batch and writes their
// replies together once every buffered request is handled: one write for many replies is
// most of pipelined throughput. But a request that waits (a timer, an offloaded job, an
// outbound connection) must not hold the replies finished before it hostage. Plugins wait
// only through the host's facilities, so each facility that may suspend its caller calls
// before_suspend() first, and the serving thread's hook (its shard) writes what its
// connections have finished. Requests that complete without waiting keep their batching.
#pragma once

namespace plugd {

/// What the calling serving thread runs before a facility suspends: a plain function and
/// its argument, set once when the thread starts (thread_local: no lock, no atomic).
struct suspend_hook {
    void (*run)(void*) noexcept = nullptr;
    void* arg = nullptr;
};

/// The calling thread's hook; empty on threads that serve no connections.
suspend_hook& this_thread_suspend_hook() noexcept;

/// Called by a facility before it may suspend its caller. Never throws, never waits.
inline void before_suspend() noexcept {
    const suspend_hook& hook = this_thread_suspend_hook();
    if (hook.run) hook.run(hook.arg);
}

}  // namespace plugd
