// framings: the registry of framings a listener can name in server.json.
//
// Adding a framing: write its codec (codec.hpp) in a file of this folder, add its kind to
// `framing_kind` and its codec to `framing_codecs` at the same position. The config's
// "framing" values, error messages and the serving loop (one serve() instantiated per
// codec) all come from this list.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "framing/http_framing.hpp"
#include "framing/line_framing.hpp"
#include "framing/oneshot_framing.hpp"
#include "framing/raw_framing.hpp"

namespace plugd {

/// How a listener turns bytes into requests: an index into framing_codecs.
enum class framing_kind : std::uint8_t {  // a byte: every connection keeps one
    line,     ///< one request per `\n`-terminated line; keep-alive, pipelined, ordered replies
    oneshot,  ///< one read is one request; the reply is written as-is and the connection closed
    http,     ///< HTTP/1.1 (and 1.0): keep-alive, pipelined; the reply is a text/plain body
    raw,      ///< the plugin's own protocol: handler::serve gets the whole connection
};
using framing_codecs = std::tuple<line_codec, oneshot_codec, http_codec, raw_codec>;

/// One value per registered framing, in framing_kind order: get(std::type_identity<Codec>).
template <class T, class Get>
constexpr std::array<T, std::tuple_size_v<framing_codecs>> per_framing(Get get) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<T, sizeof...(I)>{
            get(std::type_identity<std::tuple_element_t<I, framing_codecs>>{})...};
    }
    (std::make_index_sequence<std::tuple_size_v<framing_codecs>>{});
}

/// Its name in server.json.
inline std::string_view to_string(framing_kind kind) noexcept {
    constexpr auto names =
        per_framing<std::string_view>([]<class C>(std::type_identity<C>) { return C::name; });
    return names[static_cast<std::size_t>(kind)];
}

/// The framing called `name` in server.json, if there is one.
inline std::optional<framing_kind> framing_named(std::string_view name) noexcept {
    for (std::size_t i = 0; i < std::tuple_size_v<framing_codecs>; ++i) {
        if (to_string(static_cast<framing_kind>(i)) == name) return static_cast<framing_kind>(i);
    }
    return std::nullopt;
}

/// Every framing's name, quoted, for a message: "\"line\", \"oneshot\", \"http\" or \"raw\"".
inline std::string framing_names() {
    constexpr std::size_t n = std::tuple_size_v<framing_codecs>;
    std::string names;
    for (std::size_t i = 0; i < n; ++i) {
        names += i == 0 ? "" : i + 1 == n ? " or " : ", ";
        ((names += '"') += to_string(static_cast<framing_kind>(i))) += '"';
    }
    return names;
}

/// Whether the plugin serves connections of this framing as byte streams (handler::serve)
/// rather than answering requests (handler::handle).
inline bool hands_over_connections(framing_kind kind) noexcept {
    constexpr auto hands_over =
        per_framing<bool>([]<class C>(std::type_identity<C>) { return C::decodes_before_input; });
    return hands_over[static_cast<std::size_t>(kind)];
}

}  // namespace plugd
