// The opening handshake's checks follow RFC 6455 §4.2.1 in the order that best tells a
// client what to fix: the version first (a client of an older draft sends no key, and
// should learn which version to speak), then the key.
#include "framing/websocket_handshake.hpp"

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

#include "framing/http_framing.hpp"

namespace plugd {
namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Whether the comma-separated `list` (RFC 9110 §5.6.1: elements may be empty, with spaces
// around them) has `token`, in any case.
bool lists(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        if (http_iequals(trim(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// §4.1: the key is 16 random bytes in base64: 22 characters of the alphabet and "==".
// The unused low bits of the last character are not checked, as browsers and ws don't.
bool is_16_bytes_of_base64(std::string_view key) noexcept {
    if (key.size() != 24 || !key.ends_with("==")) return false;
    for (const char c : key.substr(0, 22)) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '+' && c != '/') return false;
    }
    return true;
}

std::uint8_t count_one_more(std::uint8_t n) noexcept {
    return n < 2 ? static_cast<std::uint8_t>(n + 1) : n;
}

websocket_upgrade refuse(std::uint16_t status, const char* reason, const char* fields = "") {
    websocket_upgrade u;
    u.what = websocket_upgrade::kind::refused;
    u.status = status;
    u.reason = reason;
    u.fields = fields;
    return u;
}

}  // namespace

void websocket_upgrade_fields::add_upgrade(std::string_view value) noexcept {
    upgrade_websocket = upgrade_websocket || lists(value, "websocket");
}

void websocket_upgrade_fields::add_connection(std::string_view value) noexcept {
    connection_upgrade = connection_upgrade || lists(value, "upgrade");
}

void websocket_upgrade_fields::add_key(std::string_view value) noexcept {
    keys = count_one_more(keys);
    key = trim(value);
}

void websocket_upgrade_fields::add_version(std::string_view value) noexcept {
    versions = count_one_more(versions);
    version = trim(value);
}

bool websocket_upgrade_fields::add(std::string_view name, std::string_view value) noexcept {
    if (http_iequals(name, "upgrade")) {
        add_upgrade(value);
    } else if (http_iequals(name, "connection")) {
        add_connection(value);
    } else if (http_iequals(name, "sec-websocket-key")) {
        add_key(value);
    } else if (http_iequals(name, "sec-websocket-version")) {
        add_version(value);
    } else {
        return false;
    }
    return true;
}

websocket_upgrade check_websocket_upgrade(std::string_view method, bool http11,
                                          const websocket_upgrade_fields& f) noexcept {
    if (!f.upgrade_websocket || !http11) return {};
    if (method != "GET") return refuse(400, "a WebSocket upgrade must be a GET request");
    if (!f.connection_upgrade)
        return refuse(400, "a WebSocket upgrade needs the header field Connection: Upgrade");
    if (f.versions > 1) return refuse(400, "more than one Sec-WebSocket-Version header field");
    if (f.version != "13")
        return refuse(426, "unsupported WebSocket version: send Sec-WebSocket-Version: 13",
                      "Sec-WebSocket-Version: 13\r\n");
    if (f.keys == 0) return refuse(400, "no Sec-WebSocket-Key header field");
    if (f.keys > 1) return refuse(400, "more than one Sec-WebSocket-Key header field");
    if (!is_16_bytes_of_base64(f.key))
        return refuse(400, "Sec-WebSocket-Key is not 16 bytes in base64");
    websocket_upgrade u;
    u.what = websocket_upgrade::kind::valid;
    u.key = f.key;
    return u;
}

std::array<char, 28> websocket_accept(std::string_view key) {
    static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // §1.3
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(),
                                                                      &EVP_MD_CTX_free};
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    if (!ctx || !EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) ||
        !EVP_DigestUpdate(ctx.get(), key.data(), key.size()) ||
        !EVP_DigestUpdate(ctx.get(), guid.data(), guid.size()) ||
        !EVP_DigestFinal_ex(ctx.get(), digest, &digest_size) || digest_size != 20) {
        throw std::runtime_error{
            "websocket handshake: OpenSSL could not compute SHA-1 for Sec-WebSocket-Accept; "
            "check that the OpenSSL configuration loads the default provider"};
    }
    unsigned char text[29];  // 4 * ceil(20 / 3) characters and the NUL EVP_EncodeBlock adds
    EVP_EncodeBlock(text, digest, 20);
    std::array<char, 28> accept;
    std::copy(text, text + 28, accept.begin());
    return accept;
}

void append_switching_protocols(std::string& out, std::string_view key, std::string_view fields) {
    const std::array<char, 28> accept = websocket_accept(key);
    out +=
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out.append(accept.data(), accept.size());
    out += "\r\n";
    out += fields;
    out += "\r\n";
}

}  // namespace plugd
