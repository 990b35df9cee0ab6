// repeated_warning: the first occurrence is logged at once, repeats only in a summary line
// every 5 s at most, and a quiet interval makes the next one news again.
#include <doctest/doctest.h>

#include "serving/repeated_warning.hpp"

using namespace std::chrono_literals;
using plugd::repeated_warning;

TEST_CASE("a repeated warning: the first at once, the rest counted into one line per 5 s") {
    repeated_warning w;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    CHECK(w.first());
    for (int i = 0; i < 999; ++i) CHECK_FALSE(w.first());
    CHECK(w.due(t0).count == 0);  // the sweep after the first line starts its interval
    CHECK(w.due(t0 + 4s).count == 0);
    const auto summary = w.due(t0 + 5s);
    CHECK(summary.count == 999);
    CHECK(summary.over == 5s);
    CHECK_FALSE(w.first());  // still within a burst: counted
    CHECK(w.due(t0 + 9s).count == 0);
    CHECK(w.due(t0 + 10s).count == 1);
    CHECK(w.due(t0 + 15s).count == 0);  // a quiet interval...
    CHECK(w.first());                   // ...and the next one is logged in full
}

TEST_CASE("a warning that is only counted is summarised at the next sweep, then every 5 s") {
    repeated_warning w;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    CHECK(w.due(t0).count == 0);
    w.count();
    w.count();
    CHECK(w.due(t0 + 1s).count == 2);
    w.count();
    CHECK(w.due(t0 + 2s).count == 0);
    CHECK(w.due(t0 + 6s).count == 1);
}

TEST_CASE("a flush reports what is counted and makes the next occurrence news") {
    repeated_warning w;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    CHECK(w.first());
    CHECK_FALSE(w.first());
    CHECK(w.flush(t0).count == 1);
    CHECK(w.first());
    CHECK(w.flush(t0).count == 0);
}
