// skip_test: a test case that cannot run here says why, and CTest reports it skipped, not
// passed.
#pragma once

#include <source_location>
#include <string_view>

namespace plugd::test {

/// The exit status of a test binary in which every test case that ran was skipped and none
/// failed (Automake's convention). tests/CMakeLists.txt gives every discovered test
/// SKIP_RETURN_CODE 77; CTest runs each test case in its own process.
inline constexpr int skipped_exit_code = 77;

/// Marks the running test case skipped and prints "<file>:<line>: SKIPPED: <reason>".
/// Call it from the test case's own body and return at once:
///     if (!exists(curl)) return skip_test("curl is not installed (apt-get install curl)");
/// The reason says what is missing here and how to provide it. A check that failed before
/// the skip still fails the test case: a skip never hides a failure.
/// Called on the test's main thread only; throws nothing.
void skip_test(std::string_view reason,
               std::source_location where = std::source_location::current()) noexcept;

}  // namespace plugd::test
