// The server log: one line per event on stderr, with a UTC timestamp and a level.
#pragma once

#include <string_view>

#include <plugd/context.hpp>

namespace plugd::log {

using level = plugd::log_level;

/// Lines below this level are dropped. Set once at start-up, before threads start.
void set_threshold(level threshold) noexcept;

/// Writes one whole line with a single write(2), so lines from several threads never
/// interleave. Never throws; a failed write is ignored (there is nowhere left to report it).
void write(level severity, std::string_view message) noexcept;

inline void debug(std::string_view m) noexcept {
    write(level::debug, m);
}
inline void info(std::string_view m) noexcept {
    write(level::info, m);
}
inline void warn(std::string_view m) noexcept {
    write(level::warn, m);
}
inline void error(std::string_view m) noexcept {
    write(level::error, m);
}

}  // namespace plugd::log
