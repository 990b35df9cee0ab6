// pid_file: the file through which `plugd -s` finds a running plugd, and proves it is one.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>

namespace plugd {

/// The pid file of this running plugd. The process holds an fcntl write lock on it for its
/// whole life, so the file proves its owner: a pid file nobody holds is stale, whatever pid
/// it names (the process is gone, or the pid was reused by an unrelated process), and a
/// second plugd configured with the same file is refused instead of overwriting it.
///
/// fcntl locks belong to the process and are released when *any* descriptor of the file is
/// closed by it: nothing else in plugd may open this file while the server runs.
/// Not inherited across fork(): a child never appears to hold it.
class pid_file {
  public:
    /// Creates (or takes over a stale) `path`, locks it and writes this process's pid. A
    /// reload status file left beside it (reload_status.hpp) is removed: it is a killed
    /// holder's, and this server writes its own once it has started.
    /// Throws std::runtime_error saying what to do when another process holds it (naming
    /// its pid and the file) or it cannot be written.
    explicit pid_file(std::filesystem::path path);
    /// Removes the reload status file and the pid file while still holding the lock, then
    /// releases it.
    ~pid_file();
    pid_file(const pid_file&) = delete;
    pid_file& operator=(const pid_file&) = delete;

    const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
};

/// What `plugd -s` finds at a pid file's path.
struct pid_file_state {
    enum class kind {
        missing,  ///< no such file
        stale,    ///< a file no process holds a lock on: signal nothing
        held,     ///< held by `holder`, a live process
    } what = kind::missing;
    pid_t holder = 0;              ///< the lock holder, as the kernel reports it
    std::optional<pid_t> written;  ///< the pid the file's text names, if it names one
};

/// Inspects `path` without taking or disturbing any lock (F_GETLK).
pid_file_state inspect_pid_file(const std::filesystem::path& path);

}  // namespace plugd
