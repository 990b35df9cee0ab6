// crash_report: an async-signal-safe fatal-signal handler. It allocates nothing, takes no
// lock and calls only functions safe in a signal handler (write, clock_gettime, pipe2,
// close, raise), plus glibc's backtrace(), made safe by a first call at installation
// (which loads libgcc's unwinder; later calls only unwind).
#include "faults/crash_report.hpp"

#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>

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

void write_report(int signo, const siginfo_t* info) noexcept {
    const running_code& runs = this_thread_runs();
    const bool json = log::json_enabled();
    line_buffer line;
    char address[2 + 16 + 1] = "0x";
    {
        auto a = reinterpret_cast<std::uintptr_t>(info ? info->si_addr : nullptr);
        for (int i = 15; i >= 0; --i) {
            address[2 + i] = "0123456789abcdef"[a & 0xf];
            a >>= 4;
        }
        address[18] = '\0';
    }
    // The message, the same words in text and JSON.
    line_buffer message;
    message << "crash: " << signal_name(signo);
    if (signo == SIGSEGV || signo == SIGBUS) message << " at address " << address;
    if (runs.plugin) {
        message << " in plugin " << runs.plugin << " generation ";
        message.number(runs.generation);
        if (runs.peer)
            message << " (request from " << runs.peer << " on listener " << runs.listener << ')';
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
        if (runs.plugin) {
            line << ",\"plugin\":\"" << runs.plugin << "\",\"generation\":\"";
            line.number(runs.generation) << '"';
        }
        if (runs.peer) {
            line << ",\"listener\":\"" << runs.listener << "\",\"peer\":\"" << runs.peer << '"';
        }
        line << "}\n";
    } else {
        append_timestamp(line);
        line << " fatal " << message.text << '\n';
    }
    line.write_to(STDERR_FILENO);

    void* frames[64];
    const int count = ::backtrace(frames, 64);
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

// The master's note: which plugin, in a file it reads once the worker is gone.
void write_note() noexcept {
    if (!crash_note_file[0]) return;
    const int fd = ::open(crash_note_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const running_code& runs = this_thread_runs();
    line_buffer note;
    note << (runs.plugin ? runs.plugin : "") << '\t';
    note.number(runs.generation) << '\n';
    note.write_to(fd);
    ::close(fd);
}

void on_fatal_signal(int signo, siginfo_t* info, void*) {
    // SA_RESETHAND has restored the default action: a crash inside the report ends the
    // process rather than recursing.
    const int saved_errno = errno;
    write_note();
    write_report(signo, info);
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
    void* warm[1];
    ::backtrace(warm, 1);  // loads the unwinder now, not in the handler
    struct sigaction action {};
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    for (const int signo : fatal_signals) ::sigaction(signo, &action, nullptr);
    prepare_thread_for_crash_report();
}

}  // namespace plugd
