// repeated_warning: a warning that can come once per request or connection (ERR busy, a
// handler's exception, a timeout, max_connections), logged the first time at once and then
// at most once per interval, as one line with how many more there were: a flood of them
// must not become an outage of its own (a full offload queue once wrote 71 MB in 14 s).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace plugd {

/// What repeats: one kind of warning. The summary line's words for each are in shard.cpp.
enum class warning_kind : std::uint8_t {
    busy,              ///< ERR busy: the offload queue was full
    handler_failed,    ///< a handler threw (ERR internal error)
    request_timeout,   ///< request_timeout_ms: the request was cancelled
    slow_request,      ///< an HTTP request not received whole in time: 408
    message_timeout,   ///< raw: the rest of a message not received in time
    write_timeout,     ///< the client did not read its replies
    connection_limit,  ///< max_connections: only ever summarised (count())
    at_capacity,       ///< a plugin instance at its max_in_flight: 503 / ERR busy
    slow_subscriber,   ///< a subscriber fell max_queued_messages behind on a topic
};
inline constexpr std::size_t warning_kinds = 9;

/// One kind of warning on one listener of one shard. Touched only by that shard's thread:
/// counting one is a plain write to a field of its own, with no lock, no atomic and no
/// clock read; the shard's sweeper owns the time and calls due() on every tick.
class repeated_warning {
  public:
    static constexpr std::chrono::seconds interval{5};

    /// One occurrence. True: log it in full now (the first after a quiet interval);
    /// false: it is counted for the next summary line.
    bool first() noexcept {
        if (quiet_) {
            ++repeats_;
            return false;
        }
        quiet_ = true;
        return true;
    }
    /// One occurrence that is never logged by itself, only in summary lines.
    void count() noexcept { ++repeats_; }

    /// What a summary line reports: `count` occurrences over `over` (zero: since the last
    /// sweep, when none was logged before).
    struct summary {
        std::uint64_t count = 0;
        std::chrono::steady_clock::duration over{};
    };
    /// At a sweep: the summary due now (count 0: none). After a line, the next summary
    /// waits an interval; after a whole interval without any, the next occurrence is
    /// logged in full again.
    summary due(std::chrono::steady_clock::time_point now) noexcept;
    /// A reload or the end: whatever is counted is reported now, and the next occurrence
    /// is logged in full.
    summary flush(std::chrono::steady_clock::time_point now) noexcept;

  private:
    bool quiet_ = false;         ///< a line about it went out less than an interval ago
    std::uint64_t repeats_ = 0;  ///< occurrences since, not logged one by one
    std::chrono::steady_clock::time_point since_{};  ///< that line's time; epoch: not seen yet
};

/// Every kind, for one listener on one shard.
struct repeated_warnings {
    std::array<repeated_warning, warning_kinds> kinds;
    repeated_warning& operator[](warning_kind k) noexcept {
        return kinds[static_cast<std::size_t>(k)];
    }
};

}  // namespace plugd
