// doctest's main for every test binary: runs doctest, then exits skipped_exit_code when
// every test case that ran was skipped (skip_test.hpp), so CTest says SKIPPED, not Passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>

#include "skip_test.hpp"

namespace {

// Written by the test runner's thread only (doctest runs test cases one after another).
bool current_skipped = false;
unsigned ran = 0;
unsigned skipped = 0;

// Counts the test cases that ran and those that skipped without failing. A skip after a
// failed check is not counted: the test case failed, and doctest's exit status says so.
struct skip_counter final : doctest::IReporter {
    explicit skip_counter(const doctest::ContextOptions&) {}
    void test_case_start(const doctest::TestCaseData&) override {
        current_skipped = false;
        ++ran;
    }
    void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
        if (current_skipped && stats.testCaseSuccess) ++skipped;
    }
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};
REGISTER_LISTENER("plugd_skip_counter", 1, skip_counter);

}  // namespace

void plugd::test::skip_test(std::string_view reason, std::source_location where) noexcept {
    current_skipped = true;
    std::cout << where.file_name() << ':' << where.line() << ": SKIPPED: " << reason << std::endl;
}

int main(int argc, char** argv) {
    doctest::Context context{argc, argv};
    const int status = context.run();
    if (context.shouldExit() || status != 0 || skipped == 0) return status;
    std::cout << "[doctest] " << skipped << " of " << ran
              << " test cases skipped: they proved nothing here (the SKIPPED lines say why)"
              << std::endl;
    // Skipped only when nothing but skips ran (under CTest, one test case per process); a
    // whole binary run by hand, where others passed, succeeds with the count above.
    return skipped == ran ? plugd::test::skipped_exit_code : 0;
}
