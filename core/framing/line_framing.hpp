// Line framing: finds the next `\n`-terminated request in buffered bytes.
#pragma once

#include <cstddef>
#include <string_view>

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

}  // namespace plugd
