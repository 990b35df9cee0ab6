// running_code: what the current thread is running, for crash and stall reports.
//
// The request path writes it with plain stores to a thread_local (no lock, no atomic, no
// other thread touches it); only a signal handler on the same thread reads it, so every
// pointer in it is alive whenever it is read: the request it describes is running.
#pragma once

#include <cstdint>

namespace plugd {

struct running_code {
    const char* plugin = nullptr;    ///< instance name; nullptr: the core
    std::uint64_t generation = 0;    ///< of the plugin's version
    const char* listener = nullptr;  ///< the request's, if it is one
    const char* peer = nullptr;
};

/// This thread's: set when a request starts, cleared when it ends (and around an
/// offloaded job on an offload thread). A handler that suspends lets another request
/// start: the record then names the request that started last, which is the one running
/// unless another request began while the running one was suspended.
running_code& this_thread_runs() noexcept;

/// Sets this thread's record for its lifetime and restores the previous one after.
class running_scope {
  public:
    explicit running_scope(const running_code& now) noexcept : saved_{this_thread_runs()} {
        this_thread_runs() = now;
    }
    ~running_scope() { this_thread_runs() = saved_; }
    running_scope(const running_scope&) = delete;
    running_scope& operator=(const running_scope&) = delete;

  private:
    running_code saved_;
};

}  // namespace plugd
