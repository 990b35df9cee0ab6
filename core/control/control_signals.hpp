// control_signals: SIGHUP, SIGINT, SIGTERM and the command signal (control_command) as events
// on the control thread (signalfd).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>

namespace plugd {

/// Blocks SIGHUP, SIGINT, SIGTERM and command_signal() in the calling thread and so in every
/// thread it starts
/// afterwards. Call it on the main thread before any other thread exists: a blocked signal
/// stays pending for `control_signals` instead of interrupting a shard's thread, and one sent
/// during start-up waits instead of killing the process (SIGHUP's default action).
void block_control_signals();

/// Reads the blocked control signals from a signalfd on the control thread's io_context.
/// No asynchronous signal handler runs, so a signal cannot land on a shard's thread, and
/// none is lost to a thread that happens to receive it at a bad moment (ThreadSanitizer's
/// deferred handlers lost SIGHUPs that way, about once in a hundred start-ups).
class control_signals {
  public:
    /// Throws std::system_error when no signalfd can be created.
    explicit control_signals(boost::asio::io_context& io);

    /// Calls `handler` with the next control signal's number and, for command_signal(),
    /// the value it was queued with (0 when it was sent without one). Signals of one kind
    /// sent while none is being waited for are merged into one, as the kernel does, but for
    /// the command signal, which is queued.
    void async_wait(std::function<void(int signo, int value)> handler);
    void cancel();

  private:
    boost::asio::posix::stream_descriptor stream_;
};

}  // namespace plugd
