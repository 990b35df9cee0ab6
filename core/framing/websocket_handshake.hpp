// websocket_handshake: RFC 6455 §4.2's opening handshake on the server's side: whether a
// request asks for a WebSocket, what is wrong with one that asks badly, and the 101 answer.
// The HTTP parser (http_framing) gathers the fields; nothing here parses HTTP.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace plugd {

/// The fields of a request that ask for a WebSocket (RFC 6455 §4.2.1), gathered as a parser
/// meets them. Views into the request's bytes. Values may come with spaces around them.
struct websocket_upgrade_fields {
    bool upgrade_websocket = false;   ///< an Upgrade field lists the protocol "websocket"
    bool connection_upgrade = false;  ///< a Connection field lists the option "upgrade"
    std::uint8_t keys = 0;            ///< how many Sec-WebSocket-Key fields (at most 2 counted)
    std::uint8_t versions = 0;        ///< how many Sec-WebSocket-Version fields (ditto)
    std::string_view key;             ///< the last Sec-WebSocket-Key, spaces trimmed
    std::string_view version;         ///< the last Sec-WebSocket-Version, spaces trimmed

    void add_upgrade(std::string_view value) noexcept;
    void add_connection(std::string_view value) noexcept;
    void add_key(std::string_view value) noexcept;
    void add_version(std::string_view value) noexcept;
    /// One of the four above by its field name (any case); other fields are ignored.
    /// Returns whether `name` was one of them.
    bool add(std::string_view name, std::string_view value) noexcept;
};

/// What a request is to a server that speaks WebSocket.
struct websocket_upgrade {
    enum class kind : std::uint8_t {
        none,     ///< no upgrade to WebSocket: an ordinary request
        valid,    ///< a valid opening handshake: answer append_switching_protocols(key)
        refused,  ///< asks for a WebSocket, wrongly: answer `status`, `reason`, `fields`
    };
    kind what = kind::none;
    std::uint16_t status = 0;  ///< refused: 400, or 426 for a version other than 13
    const char* reason = "";   ///< refused: what is wrong and what to send instead
    /// refused: header fields ("Name: value\r\n") the answer carries: the version plugd
    /// speaks, with a 426 (§4.4).
    const char* fields = "";
    std::string_view key;  ///< valid: the Sec-WebSocket-Key to answer
};

/// Decides what `method` with `fields` is. Only an Upgrade field listing "websocket" makes a
/// request ask for one; in an HTTP/1.0 request (`http11` false) Upgrade is ignored (RFC 9110
/// §7.8). Asking for one, it must be a GET with `Connection: upgrade`, one key that is 16
/// bytes in base64, and `Sec-WebSocket-Version: 13`.
websocket_upgrade check_websocket_upgrade(std::string_view method, bool http11,
                                          const websocket_upgrade_fields& fields) noexcept;

/// Sec-WebSocket-Accept for `key` (§4.2.2): base64 of the SHA-1 of `key` and RFC 6455's
/// GUID, computed by OpenSSL. Throws std::runtime_error if OpenSSL cannot compute SHA-1
/// (a provider configuration without it).
std::array<char, 28> websocket_accept(std::string_view key);

/// Appends the answer to a valid handshake: 101 Switching Protocols with Upgrade,
/// Connection and Sec-WebSocket-Accept for `key`, then `fields` ("Name: value\r\n" lines:
/// what the filters set, Sec-WebSocket-Protocol or Set-Cookie for instance). Throws as
/// websocket_accept() does, and std::bad_alloc.
void append_switching_protocols(std::string& out, std::string_view key,
                                std::string_view fields = {});

}  // namespace plugd
