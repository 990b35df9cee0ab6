// The server log: one line per event on stderr, with a UTC timestamp and a level, as text
// or as one JSON object per line (server.json `/log`).
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <plugd/context.hpp>

namespace plugd::log {

using level = plugd::log_level;

/// Lines below this level are dropped. May change while threads log (a reload).
void set_threshold(level threshold) noexcept;
level threshold() noexcept;
/// JSON lines ({"time", "level", "message", and each field}) instead of text.
void set_json(bool json) noexcept;
/// Names this process in every line (a worker's "worker 1": a `[worker 1]` prefix in text,
/// a `process` member in JSON). Call before any other thread logs.
void set_process_tag(std::string tag);
/// Whether lines are JSON now (async-signal-safe: a crash report writes in the same format).
bool json_enabled() noexcept;

/// Where lines go instead of stderr: the plugin test harness keeps them for the test to
/// read. Called from any thread with the line's severity and message (text fields appended,
/// no timestamp). nullptr: stderr again.
using sink = void (*)(level severity, std::string_view message);
void set_sink(sink destination) noexcept;

/// A named value that goes with a line: ` key=value` in text, a member in JSON.
struct field {
    std::string_view key;
    std::string_view value;
    bool in_text = true;  ///< false: the text line's message already says it (see tag())
};

/// A field for JSON lines only, where a log pipeline filters on it (plugin, listener,
/// peer, generation): the text line's message already names it in words.
constexpr field tag(std::string_view key, std::string_view value) noexcept {
    return {key, value, false};
}

/// Writes one whole line with a single write(2), so lines from several threads never
/// interleave. Never throws; a failed write is ignored (there is nowhere left to report it).
void write(level severity, std::string_view message, std::span<const field> fields) noexcept;
inline void write(level severity, std::string_view message,
                  std::initializer_list<field> fields = {}) noexcept {
    write(severity, message, std::span<const field>{fields.begin(), fields.size()});
}

inline void debug(std::string_view m, std::initializer_list<field> fields = {}) noexcept {
    write(level::debug, m, fields);
}
inline void info(std::string_view m, std::initializer_list<field> fields = {}) noexcept {
    write(level::info, m, fields);
}
/// With fields chosen at run time (a line whose fields depend on the listener).
inline void info(std::string_view m, std::span<const field> fields) noexcept {
    write(level::info, m, fields);
}
inline void warn(std::string_view m, std::initializer_list<field> fields = {}) noexcept {
    write(level::warn, m, fields);
}
inline void error(std::string_view m, std::initializer_list<field> fields = {}) noexcept {
    write(level::error, m, fields);
}

}  // namespace plugd::log
