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

// Frames `input` as a connection would, through the http codec, receiving it `chunk`
// bytes per read, and encodes a reply to every request.
outcome frame(std::string_view input, std::size_t chunk, std::size_t max) {
    outcome out;
    std::string buffer, reply;
    plugd::http_codec codec;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer += input.substr(at, chunk);
        while (!buffer.empty()) {
            const plugd::frame f = codec.decode(buffer, max, false);
            if (f.what == plugd::frame::kind::refused) {
                check(f.status == 400 || f.status == 413 || f.status == 431 || f.status == 501);
                out.refused = f.status;
                return out;
            }
            if (f.what == plugd::frame::kind::incomplete) {
                // The reader stops at the limit: an incomplete request fits within it.
                check(buffer.size() < plugd::http_codec::max_buffered(max));
                break;
            }
            check(f.what == plugd::frame::kind::request && f.http != nullptr);
            check(f.consumed > 0 && f.consumed <= buffer.size() && f.consumed <= max);
            check(f.http->body.size() <= max);
            check(f.message.size() <= max);
            // Smuggling: a request whose end could be read two ways is never accepted.
            check(!(has_field(f.http->head, "transfer-encoding") &&
                    has_field(f.http->head, "content-length")));
            // A WebSocket upgrade judged valid has a GET and a key to answer; a refused one
            // has a status to answer with.
            const plugd::websocket_upgrade& ws = codec.last().websocket;
            if (ws.what == plugd::websocket_upgrade::kind::valid)
                check(f.http->method == "GET" && ws.key.size() == 24);
            if (ws.what == plugd::websocket_upgrade::kind::refused)
                check(ws.status == 400 || ws.status == 426);
            out.requests.push_back(std::string{f.http->method} + ' ' + std::string{f.http->target} +
                                   ' ' + std::string{f.http->body});
            // The reply to it is one whole response whatever the request was.
            reply.clear();
            codec.reply_buffer(reply) += f.message;
            codec.encode_reply(reply, 200, false);
            check(reply.starts_with("HTTP/1.") && reply.find("\r\n\r\n") != std::string::npos);
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
