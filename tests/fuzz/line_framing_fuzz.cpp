// Fuzz target: line framing. Checks invariants, not just crashes: whatever the bytes and
// however they are split into reads, the requests found are the same, each within the
// limit, and together they account for exactly the bytes consumed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "framing/line_framing.hpp"

namespace {

struct outcome {
    std::vector<std::string> requests;
    bool refused = false;
    friend bool operator==(const outcome&, const outcome&) = default;
};

void check(bool ok) {
    if (!ok) std::abort();
}

// Frames `input` as a connection would, receiving it `chunk` bytes per read.
outcome frame(std::string_view input, std::size_t chunk, std::size_t max) {
    outcome out;
    std::string buffer;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer += input.substr(at, chunk);
        for (;;) {
            const auto f = plugd::next_line(buffer, max);
            if (f.what == plugd::line_frame::kind::too_large) {
                out.refused = true;
                return out;
            }
            if (f.what == plugd::line_frame::kind::incomplete) {
                // An incomplete frame must still be able to fit within the limit.
                check(buffer.size() < max + 2);
                break;
            }
            check(f.consumed > 0 && f.consumed <= buffer.size());
            check(f.message.size() <= max);
            check(f.message.find('\n') == std::string_view::npos);
            check(buffer[f.consumed - 1] == '\n');
            const std::string_view line{buffer.data(), f.consumed - 1};
            check(line == f.message ||
                  (line.size() == f.message.size() + 1 && line.back() == '\r' &&
                   line.substr(0, f.message.size()) == f.message));
            out.requests.emplace_back(f.message);
            buffer.erase(0, f.consumed);
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // The first two bytes choose the limit and the read size; the rest is the stream.
    const std::size_t max = 1 + data[0] % 64;
    const std::size_t chunk = 1 + data[1] % 16;
    const std::string_view input{reinterpret_cast<const char*>(data) + 2, size - 2};
    const outcome whole = frame(input, input.size() + 1, max);
    const outcome split = frame(input, chunk, max);
    // Reads may stop earlier when a line is refused, but never disagree before that.
    if (!whole.refused && !split.refused) check(whole == split);
    return 0;
}
