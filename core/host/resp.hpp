// resp: Redis's wire protocol (RESP2) as a client speaks it: commands encoded, replies and
// pushes decoded from the bytes received so far. Pure: no I/O, no allocation beyond the values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace plugd::resp {

/// Appends `args` to `out` as one command (an array of bulk strings), ready to write;
/// commands appended one after another are a pipeline.
void append_command(std::string& out, std::span<const std::string_view> args);

/// One reply or push. `text`: a simple string's, an error's or a bulk string's bytes;
/// `integer`: an integer's value; `items`: an array's elements. A null bulk string or array
/// ("$-1", "*-1") is `null`.
struct value {
    enum class kind : std::uint8_t { simple, error, integer, bulk, null, array };
    kind type = kind::null;
    std::string text;
    std::int64_t integer = 0;
    std::vector<value> items;

    friend bool operator==(const value&, const value&) = default;
};

/// The peer sent something that is not RESP, or is above the reader's caps: the connection
/// cannot be read further. what() says which and where.
class protocol_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Decodes values from the front of a buffer the caller keeps and appends to. Holds no
/// bytes: an unfinished value is looked at again, from its start, when more have arrived
/// (only its headers are read again: a bulk string is found by its length, not scanned).
/// Caps keep what one value can make the caller hold bounded: a bulk string or a line is
/// at most `max_bytes`, an array at most `max_items` elements, arrays nest at most
/// `max_depth` deep.
class reader {
  public:
    explicit reader(std::size_t max_bytes, std::size_t max_items = 16,
                    std::size_t max_depth = 4) noexcept
        : max_bytes_{max_bytes}, max_items_{max_items}, max_depth_{max_depth} {}

    /// The first whole value of `bytes`, and in `consumed` how many bytes it took; nothing
    /// (and `consumed` 0) while it is not whole yet. Throws protocol_error.
    std::optional<value> next(std::string_view bytes, std::size_t& consumed) const;

  private:
    std::optional<value> parse(std::string_view bytes, std::size_t& at, std::size_t depth) const;
    std::optional<std::string_view> line(std::string_view bytes, std::size_t& at) const;
    std::int64_t number(std::string_view digits, char kind) const;

    std::size_t max_bytes_;
    std::size_t max_items_;
    std::size_t max_depth_;
};

}  // namespace plugd::resp
