// Fuzz target: http framing. Checks invariants, not just crashes: whatever the bytes and
// however they are split into reads, the requests found are the same (method, target and
// body), each within the limit, and each consumed from the bytes received.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "framing/http_framing.hpp"

namespace {

struct outcome {
    std::vector<std::string> requests;  // method, target and body, joined
    int refused = 0;                    // the status of a refusal
    friend bool operator==(const outcome&, const outcome&) = default;
};

void check(bool ok) {
    if (!ok) std::abort();
}

// Whether a line of `head` starts with the field name `name` (lower case) and its colon.
bool has_field(std::string_view head, std::string_view name) {
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;
         at = head.find("\r\n", at + 2)) {
        const std::string_view line = head.substr(at + 2, name.size() + 1);
        if (line.size() != name.size() + 1 || line.back() != ':') continue;
        bool same = true;
        for (std::size_t i = 0; i < name.size(); ++i) {
            const char c = line[i] >= 'A' && line[i] <= 'Z' ? char(line[i] - 'A' + 'a') : line[i];
            same = same && c == name[i];
        }
        if (same) return true;
    }
    return false;
}

// Frames `input` as a connection would, receiving it `chunk` bytes per read.
outcome frame(std::string_view input, std::size_t chunk, std::size_t max) {
    outcome out;
    std::string buffer, chunked, decoded;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer += input.substr(at, chunk);
        while (!buffer.empty()) {
            const auto f = plugd::next_http_request(buffer, max, chunked);
            if (f.what == plugd::http_frame::kind::error) {
                check(f.status == 400 || f.status == 413 || f.status == 431 || f.status == 501);
                out.refused = f.status;
                return out;
            }
            if (f.what == plugd::http_frame::kind::incomplete) {
                // The reader stops at the limit: an incomplete request fits within it.
                check(buffer.size() < max + 2);
                break;
            }
            check(f.consumed > 0 && f.consumed <= buffer.size() && f.consumed <= max);
            check(f.body.size() <= max);
            const std::string_view message = plugd::http_message(f, decoded);
            check(message.size() <= max);
            // Smuggling: a request whose end could be read two ways is never accepted.
            check(!(has_field(f.head, "transfer-encoding") && has_field(f.head, "content-length")));
            out.requests.push_back(std::string{f.method} + ' ' + std::string{f.target} + ' ' +
                                   std::string{f.body});
            buffer.erase(0, f.consumed);
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // The first two bytes choose the limit and the read size; the rest is the stream.
    const std::size_t max = 16 + data[0] % 512;
    const std::size_t chunk = 1 + data[1] % 32;
    const std::string_view input{reinterpret_cast<const char*>(data) + 2, size - 2};
    const outcome whole = frame(input, input.size() + 1, max);
    const outcome split = frame(input, chunk, max);
    // Reads may stop earlier when a request is refused, but never disagree before that.
    if (!whole.refused && !split.refused) check(whole == split);
    return 0;
}
