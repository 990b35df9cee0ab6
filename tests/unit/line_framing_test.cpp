// Line framing: split reads, pipelining, CRLF, empty lines and the size limit.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "framing/line_framing.hpp"

namespace {

using plugd::line_frame;
using plugd::next_line;

// Feeds `chunks` one after another into a buffer, as reads would, and collects requests.
std::vector<std::string> frame_all(const std::vector<std::string>& chunks, std::size_t max,
                                   bool* refused = nullptr) {
    std::string buffer;
    std::vector<std::string> requests;
    for (const auto& chunk : chunks) {
        buffer += chunk;
        for (;;) {
            auto f = next_line(buffer, max);
            if (f.what == line_frame::kind::too_large) {
                if (refused) *refused = true;
                return requests;
            }
            if (f.what == line_frame::kind::incomplete) break;
            requests.emplace_back(f.message);
            buffer.erase(0, f.consumed);
        }
    }
    return requests;
}

}  // namespace

TEST_CASE("a line split across reads is one request") {
    CHECK(frame_all({"wo", "r", "ld\n"}, 100) == std::vector<std::string>{"world"});
    CHECK(frame_all({"world"}, 100).empty());
}

TEST_CASE("pipelined lines come out in order") {
    CHECK(frame_all({"a\nb\nc", "\nd\n"}, 100) == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("CRLF is stripped, a lone CR is kept") {
    CHECK(frame_all({"a\r\n", "b\r", "\n", "c\rd\n"}, 100) ==
          std::vector<std::string>{"a", "b", "c\rd"});
    CHECK(frame_all({"x\r\r\n"}, 100) == std::vector<std::string>{"x\r"});
}

TEST_CASE("empty lines are empty requests") {
    CHECK(frame_all({"\n\r\n\n"}, 100) == std::vector<std::string>{"", "", ""});
}

TEST_CASE("NUL bytes and invalid UTF-8 pass through untouched") {
    const std::string odd{"a\0b\xff\xfe", 5};
    CHECK(frame_all({odd + "\n"}, 100) == std::vector<std::string>{odd});
}

TEST_CASE("the size limit counts the message, not its terminator") {
    const std::string max(8, 'x');
    CHECK(frame_all({max + "\r\n"}, 8) == std::vector<std::string>{max});
    bool refused = false;
    CHECK(frame_all({max + "y\n"}, 8, &refused).empty());
    CHECK(refused);
}

TEST_CASE("a long line is refused before its newline arrives") {
    bool refused = false;
    frame_all({std::string(10, 'x')}, 8, &refused);
    CHECK(refused);
    auto f = next_line(std::string(9, 'x') + "\n", 8);
    CHECK(f.what == line_frame::kind::too_large);
}

TEST_CASE("the scan is bounded by the limit, not by what is buffered") {
    // A newline far past the limit must not turn an over-long line into a request.
    auto f = next_line(std::string(1000, 'x') + "\n", 10);
    CHECK(f.what == line_frame::kind::too_large);
}
