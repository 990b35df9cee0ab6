// The server log: formats and writes log lines.
#include "log.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace plugd::log {
namespace {

level g_threshold = level::info;

const char* name_of(level l) noexcept {
    switch (l) {
        case level::debug:
            return "debug";
        case level::info:
            return "info";
        case level::warn:
            return "warn";
        case level::error:
            return "error";
    }
    return "?";
}

}  // namespace

void set_threshold(level threshold) noexcept {
    g_threshold = threshold;
}

void write(level severity, std::string_view message) noexcept {
    if (severity < g_threshold) return;
    try {
        const auto now = std::chrono::system_clock::now();
        const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
        const auto millis =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
            1000;
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        std::array<char, 64> stamp{};
        const int n =
            std::snprintf(stamp.data(), stamp.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
                          utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                          utc.tm_sec, static_cast<int>(millis), name_of(severity));
        std::string line;
        line.reserve(static_cast<std::size_t>(n) + message.size() + 1);
        line.append(stamp.data(), static_cast<std::size_t>(n));
        line.append(message);
        line.push_back('\n');
        const char* p = line.data();
        std::size_t left = line.size();
        while (left > 0) {
            const ssize_t written = ::write(STDERR_FILENO, p, left);
            if (written <= 0) return;
            p += written;
            left -= static_cast<std::size_t>(written);
        }
    } catch (...) {
        // Out of memory while logging: drop the line rather than take the server down.
    }
}

}  // namespace plugd::log
