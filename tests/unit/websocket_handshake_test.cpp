// WebSocket opening handshake: which requests ask for a WebSocket, what a bad one is
// answered, RFC 6455's Sec-WebSocket-Accept vector, the 101, and what the HTTP parser notes.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "framing/http_framing.hpp"
#include "framing/websocket_handshake.hpp"

namespace {

using plugd::websocket_upgrade;
using plugd::websocket_upgrade_fields;
using kind = websocket_upgrade::kind;

constexpr std::string_view sample_key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 §1.3

websocket_upgrade_fields good_fields() {
    websocket_upgrade_fields f;
    f.add("Upgrade", "websocket");
    f.add("Connection", "Upgrade");
    f.add("Sec-WebSocket-Key", sample_key);
    f.add("Sec-WebSocket-Version", "13");
    return f;
}

websocket_upgrade check(const websocket_upgrade_fields& f, std::string_view method = "GET",
                        bool http11 = true) {
    return plugd::check_websocket_upgrade(method, http11, f);
}

plugd::http_frame parse(const std::string& request) {
    std::string chunked;
    return plugd::next_http_request(request, 8192, chunked);
}

}  // namespace

TEST_CASE("websocket handshake: Sec-WebSocket-Accept of RFC 6455's sample key") {
    const auto accept = plugd::websocket_accept(sample_key);
    CHECK(std::string_view{accept.data(), accept.size()} == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("websocket handshake: the 101 carries the accept value, then the filters' fields") {
    std::string out = "before|";
    plugd::append_switching_protocols(out, sample_key, "Sec-WebSocket-Protocol: chat\r\n");
    CHECK(out ==
          "before|HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: chat\r\n\r\n");
}

TEST_CASE("websocket handshake: a valid request, with names and tokens in any case and lists") {
    const websocket_upgrade u = check(good_fields());
    CHECK(u.what == kind::valid);
    CHECK(u.key == sample_key);
    for (const char* connection : {"upgrade", "UPGRADE", "keep-alive, Upgrade",
                                   "keep-alive,upgrade", " , Upgrade ,", "Upgrade,keep-alive"}) {
        CAPTURE(connection);
        const std::string spaced_key = "  " + std::string{sample_key} + " ";
        websocket_upgrade_fields f;  // views: the values must outlive it
        f.add("upgrade", "WebSocket");
        f.add("CONNECTION", connection);
        f.add("sec-websocket-key", spaced_key);
        f.add("SEC-WEBSOCKET-VERSION", " 13");
        CHECK(check(f).what == kind::valid);
        CHECK(check(f).key == sample_key);
    }
    // Connection split over two fields, and Upgrade listing another protocol first.
    websocket_upgrade_fields f = good_fields();
    f.connection_upgrade = false;
    f.add("Connection", "keep-alive");
    f.add("Connection", "upgrade");
    f.add("Upgrade", "h2c, websocket");
    CHECK(check(f).what == kind::valid);
    CHECK_FALSE(f.add("Host", "x"));
}

TEST_CASE("websocket handshake: without Upgrade: websocket, or in HTTP/1.0, it is no upgrade") {
    websocket_upgrade_fields none;
    CHECK(check(none).what == kind::none);
    websocket_upgrade_fields h2c = good_fields();
    h2c.upgrade_websocket = false;
    h2c.add("Upgrade", "h2c");
    CHECK(check(h2c).what == kind::none);
    websocket_upgrade_fields versioned;
    versioned.add("Upgrade", "websocket2");
    CHECK_FALSE(versioned.upgrade_websocket);
    CHECK(check(good_fields(), "GET", false).what == kind::none);
}

TEST_CASE("websocket handshake: a bad upgrade is refused with 400, saying what is wrong") {
    const auto refused = [](const websocket_upgrade& u) {
        CHECK(u.what == kind::refused);
        CHECK(u.status == 400);
        CHECK(std::string_view{u.fields}.empty());
        CHECK_FALSE(std::string_view{u.reason}.empty());
        return std::string{u.reason};
    };
    CHECK(refused(check(good_fields(), "POST")).find("GET") != std::string::npos);
    websocket_upgrade_fields no_connection;
    no_connection.add("Upgrade", "websocket");
    no_connection.add("Connection", "keep-alive, upgrade-insecure");
    no_connection.add("Sec-WebSocket-Key", sample_key);
    no_connection.add("Sec-WebSocket-Version", "13");
    CHECK(refused(check(no_connection)).find("Connection") != std::string::npos);
    websocket_upgrade_fields no_key = good_fields();
    no_key.keys = 0;
    no_key.key = {};
    CHECK(refused(check(no_key)).find("Sec-WebSocket-Key") != std::string::npos);
    websocket_upgrade_fields two_keys = good_fields();
    two_keys.add("Sec-WebSocket-Key", sample_key);
    refused(check(two_keys));
    websocket_upgrade_fields two_versions = good_fields();
    two_versions.add("Sec-WebSocket-Version", "13");
    refused(check(two_versions));
    for (const char* key :
         {"", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZQ",
          "dGhlIHNhbXBsZSBub25jZQ==x", "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZ===",
          "dGhlIHNhbXBsZSBub25jZQo=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}) {
        CAPTURE(key);
        websocket_upgrade_fields f = good_fields();
        f.keys = 0;
        f.add("Sec-WebSocket-Key", key);
        CHECK(refused(check(f)).find("16 bytes") != std::string::npos);
    }
}

TEST_CASE("websocket handshake: a version other than 13, or none, is answered 426 with 13") {
    for (const char* version : {"8", "12", "14", "13, 8", "", "013"}) {
        CAPTURE(version);
        websocket_upgrade_fields f = good_fields();
        f.versions = 0;
        f.add("Sec-WebSocket-Version", version);
        const websocket_upgrade u = check(f);
        CHECK(u.what == kind::refused);
        CHECK(u.status == 426);
        CHECK(std::string_view{u.fields} == "Sec-WebSocket-Version: 13\r\n");
    }
    // A draft-76 client sends neither key nor version: it learns the version to speak.
    websocket_upgrade_fields old;
    old.add("Upgrade", "WebSocket");
    old.add("Connection", "Upgrade");
    CHECK(check(old).status == 426);
}

TEST_CASE("websocket handshake: the HTTP parser notes an upgrade, and how well it asks") {
    const std::string head =
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const std::string request = head + "Sec-WebSocket-Version: 13\r\n\r\n";
    const plugd::http_frame f = parse(request);  // views into `request`
    REQUIRE(f.what == plugd::http_frame::kind::request);
    CHECK(f.websocket.what == kind::valid);
    CHECK(f.websocket.key == sample_key);
    CHECK(f.target == "/chat");

    // An upgrade asked badly is still a request: whoever serves the route decides.
    const std::string version8 = head + "Sec-WebSocket-Version: 8\r\n\r\n";
    const plugd::http_frame v8 = parse(version8);
    REQUIRE(v8.what == plugd::http_frame::kind::request);
    CHECK(v8.websocket.what == kind::refused);
    CHECK(v8.websocket.status == 426);
    const plugd::http_frame post = parse(
        "POST /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Content-Length: 0\r\n\r\n");
    REQUIRE(post.what == plugd::http_frame::kind::request);
    CHECK(post.websocket.status == 400);

    // Plain requests, an HTTP/1.0 one with Upgrade among them, are no upgrade.
    CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").websocket.what == kind::none);
    CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
              .websocket.what == kind::none);
    CHECK(parse("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
              .websocket.what == kind::none);
}
