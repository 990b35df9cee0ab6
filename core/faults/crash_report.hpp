// crash_report: the last words of a process a fatal signal ends: which plugin (or the
// core) was running on the crashing thread, for which client, and a backtrace.
#pragma once

#include <string>

namespace plugd {

/// Installs the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT, process-wide, and
/// an alternate signal stack for the calling thread. The handler writes one log line (text
/// or JSON, as the log is) naming what this_thread_runs() says, then the backtrace, then
/// lets the process die of the same signal (exit status, core dump and systemd's
/// Restart=on-failure as without it).
void install_crash_report();

/// Also writes "<plugin>\t<generation>\n" (or "\t0\n" for the core) to `file` on a crash:
/// how a supervising master learns which plugin a worker died in. Call before threads.
void set_crash_note_file(const std::string& file);

/// An alternate stack for the calling thread, so a crash by stack overflow is reported
/// too. Every thread that runs plugin code calls it once (worker and offload threads).
void prepare_thread_for_crash_report() noexcept;

}  // namespace plugd
