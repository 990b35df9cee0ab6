// reload_status: written whole or not at all, read leniently.
#include "control/reload_status.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace plugd {
namespace {

// An outcome is three short lines; a message of a failed reload may list every worker's.
constexpr std::size_t max_reload_status_bytes = 1 << 20;

}  // namespace

std::int64_t unix_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::filesystem::path reload_status_file(const std::filesystem::path& pid_file) {
    return pid_file.string() + ".reload";
}

void write_reload_status(const std::filesystem::path& file, const reload_status& status) {
    const auto temporary = file.string() + ".tmp";
    {
        std::ofstream out{temporary, std::ios::trunc};
        out << status.attempt << ' ' << (status.ok ? "ok" : "failed") << ' ' << status.generation
            << ' ' << status.began_unix_ms << '\n'
            << status.message << '\n'
            << status.config.string() << '\n';
        if (!status.canary_state.empty()) {
            out << "canary " << status.canary_state << ' ' << status.canary_generation << ' '
                << status.canary_deadline_unix_ms << '\n';
        }
        if (!out.flush()) return;  // best effort: the log has the same line
    }
    std::error_code ignored;
    std::filesystem::rename(temporary, file, ignored);
}

std::optional<reload_status> read_reload_status(const std::filesystem::path& file) {
    // A worker's file is in a folder its user owns, and the master reading it may be root:
    // only a regular file is read (a link could lead to one of root's, a FIFO would block
    // the master), and only as much as an outcome takes.
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        char chunk[4096];
        while (text.size() < max_reload_status_bytes) {
            const ssize_t n = ::read(fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            text.append(chunk, std::min(static_cast<std::size_t>(n), sizeof chunk));
        }
    }
    ::close(fd);
    std::istringstream in{text};
    reload_status s;
    std::string outcome;
    if (!(in >> s.attempt >> outcome >> s.generation >> s.began_unix_ms)) return std::nullopt;
    s.ok = outcome == "ok";
    in.ignore(1);
    std::getline(in, s.message);
    std::string config;
    std::getline(in, config);
    s.config = config;
    std::string word;
    if (in >> word && word == "canary") {
        in >> s.canary_state >> s.canary_generation >> s.canary_deadline_unix_ms;
        if (!in) s.canary_state.clear();
    }
    return s;
}

}  // namespace plugd
