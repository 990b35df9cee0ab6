// Fuzz target: RESP replies and pushes. Checks invariants, not just crashes: whatever the
// bytes and however they are split into reads, the reader finds the same values and the same
// refusal; a value never spans more than its caps allow; consumed bytes are accounted for;
// and commands encoded by append_command decode to their arguments.
//
// Input: byte 0 chooses max_bytes (1 to 256), byte 1 the read size, byte 2 the mode (even:
// the rest is the stream; odd: the rest is split at '\0' into a command's arguments).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "host/resp.hpp"

namespace {

using plugd::resp::protocol_error;
using plugd::resp::reader;
using plugd::resp::value;

void check(bool ok) {
    if (!ok) std::abort();
}

struct outcome {
    std::vector<value> values;
    bool refused = false;
    friend bool operator==(const outcome&, const outcome&) = default;
};

// Every value's bytes are within the caps: bulk and simple strings within max_bytes.
void check_caps(const value& v, std::size_t max_bytes, std::size_t depth) {
    check(depth <= 4);
    check(v.text.size() <= max_bytes);
    check(v.items.size() <= 16);
    for (const auto& i : v.items) check_caps(i, max_bytes, depth + 1);
}

outcome read(std::string_view input, std::size_t chunk, std::size_t max_bytes) {
    const reader r{max_bytes};
    outcome out;
    std::string buffer;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer += input.substr(at, chunk);
        try {
            std::size_t consumed = 0;
            while (auto v = r.next(buffer, consumed)) {
                check(consumed > 0 && consumed <= buffer.size());
                check_caps(*v, max_bytes, 0);
                buffer.erase(0, consumed);
                out.values.push_back(std::move(*v));
            }
            check(consumed == 0);
        } catch (const protocol_error&) {
            out.refused = true;
            return out;
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::size_t max_bytes = 1 + data[0];
    const std::size_t chunk = 1 + data[1] % 64;
    const bool command = (data[2] & 1) != 0;
    const std::string_view rest{reinterpret_cast<const char*>(data) + 3, size - 3};
    if (command) {
        std::vector<std::string_view> args;
        for (std::size_t at = 0; args.size() < 16;) {
            const std::size_t end = std::min(rest.find('\0', at), rest.size());
            args.push_back(rest.substr(at, end - at));
            if (end >= rest.size()) break;
            at = end + 1;
        }
        std::string encoded;
        plugd::resp::append_command(encoded, args);
        const outcome o = read(encoded, chunk, 4096);
        check(!o.refused && o.values.size() == 1);
        check(o.values[0].type == value::kind::array && o.values[0].items.size() == args.size());
        for (std::size_t i = 0; i < args.size(); ++i)
            check(o.values[0].items[i].type == value::kind::bulk &&
                  o.values[0].items[i].text == args[i]);
        return 0;
    }
    const outcome whole = read(rest, std::max<std::size_t>(rest.size(), 1), max_bytes);
    check(read(rest, chunk, max_bytes) == whole);
    check(read(rest, 1, max_bytes) == whole);
    return 0;
}
