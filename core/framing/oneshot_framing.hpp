// Oneshot framing: what the client sends before pausing is one request; the reply is
// written as it is and the connection closed (request/response over a fresh connection
// each time, as inetd-style services and simple load generators expect).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "framing/codec.hpp"

namespace plugd {

struct oneshot_codec : plain_replies {
    static constexpr std::string_view name = "oneshot";
    static constexpr bool decodes_before_input = false;
    static constexpr bool times_partial_requests = false;
    static constexpr bool replies_have_status = false;
    /// Up to max_request_bytes of the first read(s) are the request.
    static std::size_t max_buffered(std::size_t max) noexcept { return max; }

    /// Whatever has arrived is the request (decode is called after a read took all
    /// that had arrived).
    frame decode(std::string_view input, std::size_t, bool) const noexcept {
        return frame::whole_request(input.size(), input);
    }
    /// The reply goes as it is; the connection closes after it.
    bool encode_reply(std::string&, int, bool) const noexcept { return false; }
    static void encode_refusal(std::string& out, const frame& f) { (out += f.reason) += '\n'; }
};
static_assert(codec<oneshot_codec>);

}  // namespace plugd
