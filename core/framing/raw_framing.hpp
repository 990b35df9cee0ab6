// Raw framing: the plugin's own protocol. The connection is handed over at once, before the
// client sends anything (the plugin may speak first: a banner, a handshake), and
// handler::serve reads and writes it as a byte stream until it returns.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "framing/codec.hpp"

namespace plugd {

struct raw_codec : plain_replies {
    static constexpr std::string_view name = "raw";
    static constexpr bool decodes_before_input = true;
    /// The stream times the rest of a message its plugin began to read (raw_stream).
    static constexpr bool times_partial_requests = false;
    static constexpr bool replies_have_status = false;
    static std::size_t max_buffered(std::size_t max) noexcept { return max; }

    frame decode(std::string_view, std::size_t, bool) const noexcept {
        return frame::protocol_switch();
    }
    bool encode_reply(std::string&, int, bool) const noexcept { return false; }
    static void encode_refusal(std::string&, const frame&) noexcept {}
};
static_assert(codec<raw_codec>);

}  // namespace plugd
