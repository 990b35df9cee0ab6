// repeated_warning: when a repeated warning's summary line is due.
#include "serving/repeated_warning.hpp"

#include <utility>

namespace plugd {

repeated_warning::summary repeated_warning::due(
    std::chrono::steady_clock::time_point now) noexcept {
    if (!quiet_) {
        // Only counted (max_connections), never logged in full: say so now, then wait.
        if (repeats_ == 0) return {};
        quiet_ = true;
        since_ = now;
        return {std::exchange(repeats_, 0), {}};
    }
    // The line logged at once by first(): its interval starts at the first sweep after it,
    // at most a sweep interval late (the request path reads no clock).
    if (since_ == std::chrono::steady_clock::time_point{}) {
        since_ = now;
        return {};
    }
    if (now - since_ < interval) return {};
    if (repeats_ == 0) {
        quiet_ = false;  // a quiet interval: the next one is news again
        since_ = {};
        return {};
    }
    const auto over = now - since_;
    since_ = now;
    return {std::exchange(repeats_, 0), over};
}

repeated_warning::summary repeated_warning::flush(
    std::chrono::steady_clock::time_point now) noexcept {
    const summary pending{std::exchange(repeats_, 0),
                          since_ == std::chrono::steady_clock::time_point{}
                              ? std::chrono::steady_clock::duration{}
                              : now - since_};
    quiet_ = false;
    since_ = {};
    return pending;
}

}  // namespace plugd
