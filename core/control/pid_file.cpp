// pid_file: an fcntl-locked pid file, and how `plugd -s` reads one.
#include "control/pid_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "control/reload_status.hpp"

namespace plugd {
namespace {

flock whole_file(short type) {
    flock lock{};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 0;  // to the end, however long the file grows
    return lock;
}

// The pid of the process holding a lock that would conflict with ours, if any.
std::optional<pid_t> lock_holder(int fd) {
    flock probe = whole_file(F_WRLCK);
    if (::fcntl(fd, F_GETLK, &probe) != 0 || probe.l_type == F_UNLCK) return std::nullopt;
    return probe.l_pid;
}

std::optional<pid_t> written_pid(int fd) {
    char text[32] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return std::nullopt;
    char* end = nullptr;
    const long pid = std::strtol(text, &end, 10);
    if (end == text || pid <= 0) return std::nullopt;
    return static_cast<pid_t>(pid);
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
    throw std::runtime_error("pid file " + path.string() + ": " + what);
}

}  // namespace

pid_file::pid_file(std::filesystem::path path) : path_{std::move(path)} {
    // A plugd that is stopping unlinks its file while holding the lock: if we opened the
    // old file just before, our lock is on a name nobody can find any more. Retry then.
    for (int attempt = 0; attempt < 10; ++attempt) {
        const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            fail(path_, std::string{"cannot open: "} + std::strerror(errno) +
                            "; set /pid_file to a path in a folder plugd can write");
        }
        flock lock = whole_file(F_WRLCK);
        if (::fcntl(fd, F_SETLK, &lock) != 0) {
            const int error = errno;
            const auto holder = lock_holder(fd);
            ::close(fd);
            if (error != EAGAIN && error != EACCES) {
                fail(path_, std::string{"cannot lock: "} + std::strerror(error));
            }
            if (!holder) continue;  // released meanwhile: try again
            fail(path_, "already held by another plugd (pid " + std::to_string(*holder) +
                            "); each server needs its own /pid_file: give this configuration "
                            "another one, or stop that plugd first (plugd -s stop)");
        }
        struct stat opened {
        }, named{};
        if (::fstat(fd, &opened) != 0 || ::stat(path_.c_str(), &named) != 0 ||
            opened.st_ino != named.st_ino || opened.st_dev != named.st_dev) {
            ::close(fd);
            continue;
        }
        const std::string text = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd, 0) != 0 ||
            ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
            const int error = errno;
            ::close(fd);
            fail(path_, std::string{"cannot write: "} + std::strerror(error) +
                            "; set /pid_file to a path in a folder plugd can write");
        }
        fd_ = fd;
        // A status file here is a killed holder's: `plugd -s` must not take it for ours.
        std::error_code ignored;
        std::filesystem::remove(reload_status_file(path_), ignored);
        return;
    }
    fail(path_,
         "replaced again and again while plugd tried to lock it; is another program "
         "rewriting it?");
}

pid_file::~pid_file() {
    std::error_code ignored;
    std::filesystem::remove(reload_status_file(path_), ignored);
    std::filesystem::remove(path_, ignored);
    ::close(fd_);
}

pid_file_state inspect_pid_file(const std::filesystem::path& path) {
    pid_file_state state;
    // Read-only is enough for F_GETLK, and never creates the file.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return state;
    state.written = written_pid(fd);
    if (const auto holder = lock_holder(fd)) {
        state.what = pid_file_state::kind::held;
        state.holder = *holder;
    } else {
        state.what = pid_file_state::kind::stale;
    }
    ::close(fd);
    return state;
}

}  // namespace plugd
