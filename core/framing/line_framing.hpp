// Line framing: one request per `\n`-terminated line; replies in order, each ended by `\n`;
// keep-alive and pipelined.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "framing/codec.hpp"

namespace plugd {

/// What the bytes buffered so far hold.
struct line_frame {
    enum class kind {
        incomplete,  ///< no whole line yet; read more
        request,     ///< `message` is a whole line; drop `consumed` bytes after handling it
        too_large,   ///< the line is longer than the limit; refuse it and close
    };
    kind what = kind::incomplete;
    std::string_view message;  ///< without the `\n` and one trailing `\r`; points into input
    std::size_t consumed = 0;  ///< bytes of input the request took, terminator included
};

/// Looks at the start of `input` for one request of at most `max_request_bytes` bytes
/// (terminator not counted). Does not allocate; `message` is a view into `input`.
line_frame next_line(std::string_view input, std::size_t max_request_bytes) noexcept;

/// The line framing's codec (see codec.hpp).
struct line_codec : plain_replies {
    static constexpr std::string_view name = "line";
    static constexpr bool decodes_before_input = false;
    /// A partial line is timed as idle: line clients (telnet, nc) type slowly.
    static constexpr bool times_partial_requests = false;
    static constexpr bool replies_have_status = false;
    /// The longest line and its "\r\n".
    static std::size_t max_buffered(std::size_t max) noexcept { return max + 2; }

    frame decode(std::string_view input, std::size_t max, bool eof) const noexcept {
        const line_frame l = next_line(input, max);
        switch (l.what) {
            case line_frame::kind::request:
                return frame::whole_request(l.consumed, l.message);
            case line_frame::kind::too_large:
                return frame::refusal(413, "ERR request too large");
            case line_frame::kind::incomplete:
                break;
        }
        // At end of input, what is left is a last request without its '\n'.
        if (eof && !input.empty()) return frame::whole_request(input.size(), input);
        return {};
    }
    bool encode_reply(std::string& out, int, bool) const {
        out += '\n';
        return true;
    }
    static void encode_refusal(std::string& out, const frame& f) { (out += f.reason) += '\n'; }
};
static_assert(codec<line_codec>);

}  // namespace plugd
