// reload_status: written whole or not at all, read leniently.
#include "control/reload_status.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace plugd {

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
    std::string config;
    std::getline(in, config);
    s.config = config;
    return s;
}

}  // namespace plugd
