// control_signals: the control signals, blocked everywhere and read from a signalfd.
#include "control/control_signals.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "control/control_command.hpp"

namespace plugd {
namespace {

sigset_t control_set() {
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, SIGHUP);
    ::sigaddset(&set, SIGINT);
    ::sigaddset(&set, SIGTERM);
    ::sigaddset(&set, command_signal());
    return set;
}

}  // namespace

void block_control_signals() {
    const sigset_t set = control_set();
    if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
        throw std::system_error(rc, std::generic_category(),
                                "cannot block SIGHUP/SIGINT/SIGTERM and the command signal");
    }
}

control_signals::control_signals(boost::asio::io_context& io) : stream_{io} {
    const sigset_t set = control_set();
    const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
    stream_.assign(fd);
}

void control_signals::async_wait(std::function<void(int signo, int value)> handler) {
    stream_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                       [this, handler = std::move(handler)](const boost::system::error_code& ec) {
                           if (ec) return;
                           signalfd_siginfo info;
                           const ssize_t n = ::read(stream_.native_handle(), &info, sizeof info);
                           if (n != static_cast<ssize_t>(sizeof info)) {
                               async_wait(std::move(handler));  // woken, but nothing to read
                               return;
                           }
                           const int signo = static_cast<int>(info.ssi_signo);
                           const bool queued = info.ssi_code == SI_QUEUE;
                           handler(signo, signo == command_signal() && queued ? info.ssi_int : 0);
                       });
}

void control_signals::cancel() {
    boost::system::error_code ignored;
    stream_.cancel(ignored);
}

}  // namespace plugd
