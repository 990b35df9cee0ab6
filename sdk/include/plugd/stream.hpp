// plugd::stream: a TCP connection the core opened and runs for a plugin.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <plugd/task.hpp>

namespace plugd {

/// A byte stream whose socket, timers and buffers are the core's (see context::connect).
/// Every call runs on the worker thread of the coroutine that made it, which must be the
/// one that connected: a stream is not thread-safe and does not move between threads.
///
/// Errors: a failed or timed-out operation throws `boost::system::system_error` whose
/// message names the peer, the operation and, for a timeout, the limit. A cancelled
/// request or task ends the pending operation with operation_aborted and the connection
/// is closed, never reused.
///
/// Lifetime: keep a stream inside the `handle` call or background task that opened it (a
/// local of the coroutine, not a member of the handler): it must not outlive that work,
/// which keeps the plugin version loaded. Destroying the stream closes the connection,
/// unless recycle() was called:
/// then the connection returns to the instance's pool for the next connect() to the same
/// host and port (on the same worker thread). Since SDK 1.1; members only ever appended.
class stream {
  public:
    virtual ~stream() = default;

    /// Reads what has arrived, at most `size` bytes, waiting for at least one; 0 means the
    /// peer closed the connection.
    virtual task<std::size_t> read_some(char* data, std::size_t size) = 0;

    /// Reads up to and including the next `delimiter` and returns it (delimiter included);
    /// bytes after it stay buffered for the next read. Throws `std::length_error` when
    /// `max_bytes` arrive without the delimiter, `std::runtime_error` when the peer closes
    /// first.
    virtual task<std::string> read_until(std::string_view delimiter,
                                         std::size_t max_bytes = std::size_t{1} << 20) = 0;

    /// Reads exactly `size` bytes. Throws `std::runtime_error` when the peer closes first.
    virtual task<std::string> read_exactly(std::size_t size) = 0;

    /// Writes all of `bytes`.
    virtual task<void> write(std::string_view bytes) = 0;

    /// Marks the connection reusable: call it once an exchange is complete (nothing sent
    /// that is still unanswered, nothing unread), and destroy the stream. Ignored when the
    /// connection failed, was closed or has unread bytes buffered.
    virtual void recycle() noexcept = 0;

    /// Closes the connection now; later calls throw.
    virtual void close() noexcept = 0;
};

}  // namespace plugd
