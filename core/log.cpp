// The server log: formats and writes log lines.
#include "log.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace plugd::log {
namespace {

// Read by every thread that logs, set by the control thread at start and at each reload.
std::atomic<level> g_threshold{level::info};
std::atomic<bool> g_json{false};
std::atomic<sink> g_sink{nullptr};
// Set once, before other threads log; read-only afterwards.
std::string g_process_tag;

// Appends `text` as the inside of a JSON string.
// A text line's fields: " key=value" each, except those its message already says.
void append_text_fields(std::string& line, std::span<const field> fields) {
    for (const auto& f : fields) {
        if (f.in_text) line.append(" ").append(f.key).append("=").append(f.value);
    }
}

void append_json_escaped(std::string& out, std::string_view text) {
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\u%04x", c);
            out += hex;
        } else {
            out += ch;
        }
    }
}

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
    g_threshold.store(threshold, std::memory_order_relaxed);
}

void set_json(bool json) noexcept {
    g_json.store(json, std::memory_order_relaxed);
}

level threshold() noexcept {
    return g_threshold.load(std::memory_order_relaxed);
}

void set_process_tag(std::string tag) {
    g_process_tag = std::move(tag);
}

bool json_enabled() noexcept {
    return g_json.load(std::memory_order_relaxed);
}

void set_sink(sink destination) noexcept {
    g_sink.store(destination, std::memory_order_release);
}

void write(level severity, std::string_view message, std::span<const field> fields) noexcept {
    if (severity < g_threshold.load(std::memory_order_relaxed)) return;
    try {
        if (const sink destination = g_sink.load(std::memory_order_acquire)) {
            std::string line{message};
            append_text_fields(line, fields);
            destination(severity, line);
            return;
        }
        const auto now = std::chrono::system_clock::now();
        const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
        const auto millis =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
            1000;
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        std::array<char, 32> stamp{};
        const int n =
            std::snprintf(stamp.data(), stamp.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                          utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                          utc.tm_sec, static_cast<int>(millis));
        const std::string_view time{stamp.data(), static_cast<std::size_t>(n)};
        std::string line;
        line.reserve(64 + message.size());
        if (g_json.load(std::memory_order_relaxed)) {
            line.append(R"({"time":")").append(time).append(R"(","level":")");
            line.append(name_of(severity)).append(R"(","message":")");
            append_json_escaped(line, message);
            line += '"';
            if (!g_process_tag.empty()) {
                line += R"(,"process":")";
                append_json_escaped(line, g_process_tag);
                line += '"';
            }
            for (const auto& f : fields) {
                line += ",\"";
                append_json_escaped(line, f.key);
                line += "\":\"";
                append_json_escaped(line, f.value);
                line += '"';
            }
            line += "}\n";
        } else {
            char level_column[8];
            std::snprintf(level_column, sizeof level_column, "%-5s", name_of(severity));
            line.append(time).append(" ").append(level_column).append(" ");
            if (!g_process_tag.empty()) line.append("[").append(g_process_tag).append("] ");
            line.append(message);
            append_text_fields(line, fields);
            line += '\n';
        }
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
