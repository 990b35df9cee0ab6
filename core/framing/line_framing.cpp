// Line framing.
#include "framing/line_framing.hpp"

namespace plugd {

line_frame next_line(std::string_view input, std::size_t max_request_bytes) noexcept {
    // A request of the maximum length may be followed by "\r\n": its '\n' can be found no
    // later than index max + 1, so only that much needs scanning, whatever is buffered.
    const std::size_t window = max_request_bytes + 2;
    const std::size_t newline = input.substr(0, window).find('\n');
    if (newline == std::string_view::npos) {
        return input.size() >= window ? line_frame{line_frame::kind::too_large, {}, 0}
                                      : line_frame{};
    }
    std::string_view message = input.substr(0, newline);
    if (!message.empty() && message.back() == '\r') message.remove_suffix(1);
    if (message.size() > max_request_bytes) return {line_frame::kind::too_large, {}, 0};
    return {line_frame::kind::request, message, newline + 1};
}

}  // namespace plugd
