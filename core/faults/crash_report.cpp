// crash_report: an async-signal-safe fatal-signal handler. It allocates nothing, takes no
// lock and calls only functions safe in a signal handler (write, clock_gettime, pipe2,
// close, raise, sigaction, sigsetjmp), plus libgcc's unwinder, prepared by a first
// backtrace at installation, and run under a guard: unwinding into code that is no longer
// mapped (a plugin unloaded under a thread it left behind) faults inside the unwinder, and
// the guard ends the backtrace there instead of the report.
#include "faults/crash_report.hpp"

#include <execinfo.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "faults/plugin_code_map.hpp"
#include "faults/running_code.hpp"
#include "log.hpp"

namespace plugd {
namespace {

constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

// Where the handler leaves a note for the master; empty: nowhere. Written before threads
// start, read only by the handler.
char crash_note_file[4096];

// A fixed-size line built without allocating.
struct line_buffer {
    char text[4096];
    std::size_t size = 0;

    line_buffer& operator<<(const char* s) noexcept {
        if (!s) s = "?";
        while (*s && size < sizeof text - 1) text[size++] = *s++;
        return *this;
    }
    line_buffer& operator<<(char c) noexcept {
        if (size < sizeof text - 1) text[size++] = c;
        return *this;
    }
    line_buffer& number(std::uint64_t n, int width = 0) noexcept {
        char digits[24];
        int count = 0;
        do {
            digits[count++] = static_cast<char>('0' + n % 10);
            n /= 10;
        } while (n > 0);
        for (int pad = count; pad < width; ++pad) *this << '0';
        while (count > 0) *this << digits[--count];
        return *this;
    }
    // As a JSON string's inside: the values here are plain names and addresses, but a
    // backtrace line may hold anything.
    line_buffer& json_escaped(const char* s) noexcept {
        for (; s && *s; ++s) {
            const auto c = static_cast<unsigned char>(*s);
            if (c == '"' || c == '\\') {
                *this << '\\' << *s;
            } else if (c < 0x20) {
                *this << ' ';
            } else {
                *this << *s;
            }
        }
        return *this;
    }
    void write_to(int fd) noexcept {
        const char* p = text;
        std::size_t left = size;
        while (left > 0) {
            const ssize_t n = ::write(fd, p, left);
            if (n <= 0) return;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }
};

const char* signal_name(int signo) noexcept {
    switch (signo) {
        case SIGSEGV:
            return "SIGSEGV";
        case SIGBUS:
            return "SIGBUS";
        case SIGFPE:
            return "SIGFPE";
        case SIGILL:
            return "SIGILL";
        case SIGABRT:
            return "SIGABRT";
    }
    return "a fatal signal";
}

// "2026-11-27T10:00:00.000Z" from the clock, as log.cpp writes it, without gmtime_r
// (not async-signal-safe): days to a civil date by Howard Hinnant's algorithm.
void append_timestamp(line_buffer& out) noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const std::int64_t seconds = now.tv_sec;
    std::int64_t days = seconds / 86400;
    const std::int64_t in_day = seconds % 86400;
    days += 719468;
    const std::int64_t era = days / 146097;
    const auto doe = static_cast<std::uint64_t>(days - era * 146097);
    const std::uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::uint64_t mp = (5 * doy + 2) / 153;
    const std::uint64_t day = doy - (153 * mp + 2) / 5 + 1;
    const std::uint64_t month = mp < 10 ? mp + 3 : mp - 9;
    const std::uint64_t year = yoe + static_cast<std::uint64_t>(era) * 400 + (month <= 2 ? 1 : 0);
    out.number(year, 4) << '-';
    out.number(month, 2) << '-';
    out.number(day, 2) << 'T';
    out.number(static_cast<std::uint64_t>(in_day / 3600), 2) << ':';
    out.number(static_cast<std::uint64_t>(in_day % 3600 / 60), 2) << ':';
    out.number(static_cast<std::uint64_t>(in_day % 60), 2) << '.';
    out.number(static_cast<std::uint64_t>(now.tv_nsec / 1000000), 3) << 'Z';
}

// Whose code the crash is in: this thread's record of the request it runs, else the
// plugin whose code (loaded, or unloaded since) covers the faulting instruction or address.
struct crash_owner {
    const running_code& runs;
    plugin_code_owner code;
    bool in_plugin_code = false;
    bool by_address = false;  ///< only the faulting address lies there, not the instruction
    std::uintptr_t pc = 0;    ///< the interrupted instruction, 0 if unknown

    const char* plugin() const noexcept {
        return runs.plugin ? runs.plugin : in_plugin_code ? code.plugin : nullptr;
    }
    std::uint64_t generation() const noexcept {
        return runs.plugin ? runs.generation : in_plugin_code ? code.generation : 0;
    }
};

std::uintptr_t interrupted_pc(const void* context) noexcept {
    if (!context) return 0;
    const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    return static_cast<std::uintptr_t>(uc->uc_mcontext.pc);
#else
    (void)uc;
    return 0;
#endif
}

crash_owner owner_of(int signo, const siginfo_t* info, const void* context) noexcept {
    crash_owner owner{this_thread_runs(), {}, false, false, interrupted_pc(context)};
    if (owner.pc && plugin_code_at(owner.pc, owner.code)) {
        owner.in_plugin_code = true;
    } else if (info && (signo == SIGSEGV || signo == SIGBUS) &&
               plugin_code_at(reinterpret_cast<std::uintptr_t>(info->si_addr), owner.code)) {
        owner.in_plugin_code = owner.by_address = true;
    }
    return owner;
}

void hex(line_buffer& out, std::uintptr_t a) noexcept {
    char text[2 + 16 + 1] = "0x";
    for (int i = 15; i >= 0; --i) {
        text[2 + i] = "0123456789abcdef"[a & 0xf];
        a >>= 4;
    }
    text[18] = '\0';
    out << text;
}

// The backtrace, collected frame by frame so a fault in the unwinder keeps what it found.
struct collected_frames {
    void* frames[64];
    volatile int count;
};
collected_frames collected;
sigjmp_buf unwinder_fault;

// The thread writing the report (0: none). Several threads may fault at once (a plugin's
// stray threads, when its code is unmapped): one reports, the others wait for the process
// to end, so reports never interleave and no thread jumps into another's unwinder guard.
// A lock-free atomic: safe in a signal handler.
std::atomic<long> reporting_thread{0};

long this_thread_id() noexcept {
    return ::syscall(SYS_gettid);
}

[[noreturn]] void wait_for_the_end() noexcept {
    for (;;) ::pause();
}

// The thread inside unwind_guarded (its guard handler is the process's while it runs).
std::atomic<long> unwinding_thread{0};

void on_unwinder_fault(int) {
    if (unwinding_thread.load() != this_thread_id()) wait_for_the_end();
    siglongjmp(unwinder_fault, 1);
}

_Unwind_Reason_Code collect_frame(_Unwind_Context* context, void*) {
    if (collected.count >= 64) return _URC_END_OF_STACK;
    collected.frames[collected.count] = reinterpret_cast<void*>(_Unwind_GetIP(context));
    collected.count = collected.count + 1;
    return _URC_NO_REASON;
}

// Unwinds this thread's stack into `collected`; false if the unwinder faulted (it reads
// the code at each return address, and a plugin's may be unmapped).
bool unwind_guarded() noexcept {
    collected.count = 0;
    unwinding_thread.store(this_thread_id());
    struct sigaction guard {};
    guard.sa_handler = on_unwinder_fault;
    guard.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigemptyset(&guard.sa_mask);
    struct sigaction saved_segv {
    }, saved_bus{};
    ::sigaction(SIGSEGV, &guard, &saved_segv);
    ::sigaction(SIGBUS, &guard, &saved_bus);
    // The signal being handled is blocked while its handler runs: a fault then would kill
    // the process at once, whatever the guard.
    sigset_t faults, before;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    ::pthread_sigmask(SIG_UNBLOCK, &faults, &before);
    bool complete = false;
    if (sigsetjmp(unwinder_fault, 1) == 0) {
        _Unwind_Backtrace(collect_frame, nullptr);
        complete = true;
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    ::sigaction(SIGSEGV, &saved_segv, nullptr);
    ::sigaction(SIGBUS, &saved_bus, nullptr);
    unwinding_thread.store(0);
    return complete;
}

void write_frames(void* const* frames, int count, bool json) noexcept {
    if (count <= 0) return;
    if (!json) {
        ::backtrace_symbols_fd(frames, count, STDERR_FILENO);
        return;
    }
    // JSON lines: each frame its own object. backtrace_symbols_fd writes text to a file
    // descriptor; a pipe takes it back (64 frames fit its buffer), one line per frame.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    ::backtrace_symbols_fd(frames, count, fds[1]);
    ::close(fds[1]);
    char text[16384];
    ssize_t n = ::read(fds[0], text, sizeof text - 1);
    ::close(fds[0]);
    if (n <= 0) return;
    text[n] = '\0';
    char* start = text;
    while (*start) {
        char* end = std::strchr(start, '\n');
        if (end) *end = '\0';
        line_buffer frame;
        frame << "{\"time\":\"";
        append_timestamp(frame);
        frame << "\",\"level\":\"fatal\",\"message\":\"backtrace\",\"frame\":\"";
        frame.json_escaped(start) << "\"}\n";
        frame.write_to(STDERR_FILENO);
        if (!end) break;
        start = end + 1;
    }
}

// One more line of the report (text or JSON, as the log is).
void write_line(const char* text, bool json) noexcept {
    line_buffer line;
    if (json) {
        line << "{\"time\":\"";
        append_timestamp(line);
        line << "\",\"level\":\"fatal\",\"message\":\"";
        line.json_escaped(text) << "\"}\n";
    } else {
        append_timestamp(line);
        line << " fatal " << text << '\n';
    }
    line.write_to(STDERR_FILENO);
}

void write_report(int signo, const siginfo_t* info, const crash_owner& owner) noexcept {
    const running_code& runs = owner.runs;
    const bool json = log::json_enabled();
    line_buffer line;
    // The message, the same words in text and JSON.
    line_buffer message;
    message << "crash: " << signal_name(signo);
    if (signo == SIGSEGV || signo == SIGBUS) {
        message << " at address ";
        hex(message, reinterpret_cast<std::uintptr_t>(info ? info->si_addr : nullptr));
    }
    const char* cause = nullptr;
    if (runs.plugin) {
        message << " in plugin " << runs.plugin << " generation ";
        message.number(runs.generation);
        if (runs.peer)
            message << " (request from " << runs.peer << " on listener " << runs.listener << ')';
        if (owner.in_plugin_code && owner.code.unloaded) {
            // A pointer kept across a reload into a version that is gone.
            message << ", in the code of plugin " << owner.code.plugin << " generation ";
            message.number(owner.code.generation);
            message << ", which a reload had unloaded";
        }
    } else if (owner.in_plugin_code) {
        message << " in the code of plugin " << owner.code.plugin << " generation ";
        message.number(owner.code.generation);
        if (owner.code.unloaded) {
            cause = "unloaded_plugin_code";
            message << ", which a reload had unloaded, on a thread that ran none of its "
                       "requests: most likely a thread or callback the plugin started itself "
                       "and left running after it was unloaded";
        } else {
            cause = "plugin_thread";
            message << (owner.by_address ? ": the core touched its memory" : "")
                    << ", outside any request of it: a thread or callback the plugin started "
                       "itself, or its constructor, start(), stop() or a background task";
        }
        message << " (plugins must not start threads: use ctx.offload(), ctx.spawn() or "
                   "ctx.every())";
    } else {
        message << " in the core (no plugin code was running on this thread)";
    }
    message << "; backtrace follows; the process ends";
    message.text[message.size] = '\0';
    if (json) {
        line << "{\"time\":\"";
        append_timestamp(line);
        line << "\",\"level\":\"fatal\",\"message\":\"";
        line.json_escaped(message.text) << "\",\"signal\":\"" << signal_name(signo) << '"';
        if (owner.plugin()) {
            line << ",\"plugin\":\"" << owner.plugin() << "\",\"generation\":\"";
            line.number(owner.generation()) << '"';
        }
        if (cause) line << ",\"cause\":\"" << cause << '"';
        if (runs.peer) {
            line << ",\"listener\":\"" << runs.listener << "\",\"peer\":\"" << runs.peer << '"';
        }
        line << "}\n";
    } else {
        append_timestamp(line);
        line << " fatal " << message.text << '\n';
    }
    // The named line first: whatever happens while unwinding, it has been written.
    line.write_to(STDERR_FILENO);

    const bool complete = unwind_guarded();
    write_frames(collected.frames, collected.count, json);
    if (!complete) {
        line_buffer note;
        note << "backtrace cut short: unwinding faulted after ";
        note.number(static_cast<std::uint64_t>(collected.count));
        note << " frames (the code it reached is no longer mapped); interrupted at ";
        hex(note, owner.pc);
        if (owner.in_plugin_code) {
            note << " in plugin " << owner.code.plugin << " generation ";
            note.number(owner.code.generation);
            if (owner.code.unloaded) note << " (unloaded)";
        }
        note.text[note.size] = '\0';
        write_line(note.text, json);
    }
}

// The master's note: which plugin, in a file it reads once the worker is gone.
void write_note(const crash_owner& owner) noexcept {
    if (!crash_note_file[0]) return;
    const int fd = ::open(crash_note_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    line_buffer note;
    note << (owner.plugin() ? owner.plugin() : "") << '\t';
    note.number(owner.generation()) << '\n';
    note.write_to(fd);
    ::close(fd);
}

void on_fatal_signal(int signo, siginfo_t* info, void* context) {
    // SA_RESETHAND has restored the default action: a crash inside the report ends the
    // process rather than recursing (the unwinder alone runs under a guard of its own).
    const int saved_errno = errno;
    long none = 0;
    if (!reporting_thread.compare_exchange_strong(none, this_thread_id()) &&
        none != this_thread_id())
        wait_for_the_end();  // another thread reports, then ends the process
    const crash_owner owner = owner_of(signo, info, context);
    write_note(owner);
    write_report(signo, info, owner);
    errno = saved_errno;
    ::raise(signo);  // dies of the same signal; for a fault, returning would too
}

}  // namespace

void set_crash_note_file(const std::string& file) {
    const std::size_t n = std::min(file.size(), sizeof crash_note_file - 1);
    std::memcpy(crash_note_file, file.data(), n);
    crash_note_file[n] = '\0';
}

void prepare_thread_for_crash_report() noexcept {
    // A thread that has one keeps it: a sanitizer runtime gives every thread its own and
    // unmaps it when the thread ends, which must find its own still there.
    stack_t current{};
    if (::sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
    // Leaked on purpose: a thread's alternate stack must outlive every signal it can get,
    // and threads end only when the process does (64 KiB per thread).
    constexpr std::size_t size = 64 * 1024;
    stack_t stack{};
    stack.ss_sp = new (std::nothrow) char[size];
    if (!stack.ss_sp) return;
    stack.ss_size = size;
    ::sigaltstack(&stack, nullptr);
}

void install_crash_report() {
    // Loads and initialises libgcc's unwinder now, not in the handler (its first use
    // dlopens libgcc_s and allocates).
    void* warm[1];
    ::backtrace(warm, 1);
    unwind_guarded();
    struct sigaction action {};
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    for (const int signo : fatal_signals) ::sigaction(signo, &action, nullptr);
    prepare_thread_for_crash_report();
}

}  // namespace plugd
