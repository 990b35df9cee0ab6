// The pid file and the reload status file.
#include "control_files.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace plugd {

void write_pid_file(const std::filesystem::path& file) {
    std::ofstream out{file, std::ios::trunc};
    out << ::getpid() << '\n';
    if (!out.flush()) {
        throw std::runtime_error("cannot write the pid file " + file.string() + ": " +
                                 std::strerror(errno) +
                                 "; set /pid_file to a path in a writable folder");
    }
}

std::optional<pid_t> read_pid_file(const std::filesystem::path& file) {
    std::ifstream in{file};
    long pid = 0;
    if (!(in >> pid) || pid <= 0) return std::nullopt;
    return static_cast<pid_t>(pid);
}

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
            << status.message << '\n';
        if (!out.flush()) return;  // best effort: the log has the same line
    }
    std::error_code ignored;
    std::filesystem::rename(temporary, file, ignored);
}

std::optional<reload_status> read_reload_status(const std::filesystem::path& file) {
    std::ifstream in{file};
    reload_status s;
    std::string outcome;
    if (!(in >> s.attempt >> outcome >> s.generation >> s.began_unix_ms)) return std::nullopt;
    s.ok = outcome == "ok";
    in.ignore(1);
    std::getline(in, s.message);
    return s;
}

}  // namespace plugd
