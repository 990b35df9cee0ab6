// control_signals: SIGHUP, SIGINT and SIGTERM as events on the control thread (signalfd).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>

namespace plugd {

/// Blocks SIGHUP, SIGINT and SIGTERM in the calling thread and so in every thread it starts
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

    /// Calls `handler` with the next control signal's number. Signals of one kind sent
    /// while none is being waited for are merged into one, as the kernel does.
    void async_wait(std::function<void(int signo)> handler);
    void cancel();

  private:
    boost::asio::posix::stream_descriptor stream_;
};

}  // namespace plugd
