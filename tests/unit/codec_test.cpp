// Codecs on bytes: each framing's codec as the serving loop drives it (decode what is
// buffered, consume, decode again), fed whole, split at every byte, pipelined and refused;
// and what each encodes.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "framing/framings.hpp"

namespace {

using plugd::frame;

constexpr std::size_t limit = 64;

// What a stream of bytes decoded into: one entry per request ("message" or, over HTTP,
// "METHOD target|message"), then "refused <status> <reason>" or "switch" if that ended it.
template <class Codec>
struct decoder {
    Codec codec;
    std::size_t max = limit;
    std::string buffered;
    std::vector<std::string> seen;
    bool ended = false;

    void feed(std::string_view bytes, bool eof = false) {
        buffered += bytes;
        while (!ended && (!buffered.empty() || Codec::decodes_before_input)) {
            const frame f = codec.decode(buffered, max, eof);
            if (f.what == frame::kind::incomplete) return;
            if (f.what == frame::kind::refused) {
                seen.push_back("refused " + std::to_string(f.status) + " " + f.reason);
                ended = true;
                return;
            }
            if (f.what == frame::kind::switch_protocol) {
                seen.push_back("switch");
                ended = true;
                return;
            }
            std::string entry{f.message};
            if (f.http) {
                entry =
                    std::string{f.http->method} + " " + std::string{f.http->target} + "|" + entry;
            }
            seen.push_back(entry);
            REQUIRE(f.consumed > 0);
            REQUIRE(f.consumed <= buffered.size());
            buffered.erase(0, f.consumed);
        }
    }
};

// Decodes `bytes` whole, then split in two at every byte: every split must decode to the
// same requests as the whole (a codec must not depend on how reads cut the stream).
template <class Codec>
std::vector<std::string> decode_every_split(std::string_view bytes, bool eof = false,
                                            std::size_t max = limit) {
    decoder<Codec> whole;
    whole.max = max;
    whole.feed(bytes, eof);
    for (std::size_t at = 0; at <= bytes.size(); ++at) {
        decoder<Codec> split;
        split.max = max;
        split.feed(bytes.substr(0, at));
        split.feed(bytes.substr(at), eof);
        CHECK_MESSAGE(split.seen == whole.seen, "split at byte " << at);
    }
    return whole.seen;
}

using strings = std::vector<std::string>;

}  // namespace

TEST_CASE("line codec: whole, split at every byte, pipelined, refused") {
    CHECK(decode_every_split<plugd::line_codec>("world\n") == strings{"world"});
    CHECK(decode_every_split<plugd::line_codec>("a\r\nb\n\nc\n") == strings{"a", "b", "", "c"});
    // At end of input the last line needs no '\n'.
    CHECK(decode_every_split<plugd::line_codec>("a\nlast", true) == strings{"a", "last"});
    CHECK(decode_every_split<plugd::line_codec>("a\nlast", false) == strings{"a"});
    const std::string long_line(limit + 1, 'x');
    CHECK(decode_every_split<plugd::line_codec>("ok\n" + long_line + "\nnever\n") ==
          strings{"ok", "refused 413 ERR request too large"});
    // Without its '\n', an over-long line is refused once it cannot fit any more.
    CHECK(decode_every_split<plugd::line_codec>(std::string(limit + 2, 'x')) ==
          strings{"refused 413 ERR request too large"});
}

TEST_CASE("line codec: a reply ends with a newline, a refusal is its reason on a line") {
    plugd::line_codec codec;
    std::string out;
    codec.reply_buffer(out) += "Hello, world";
    CHECK(codec.reply_head() == nullptr);
    CHECK(codec.encode_reply(out, 200, false));
    CHECK(out == "Hello, world\n");
    plugd::line_codec::encode_refusal(out, frame::refusal(413, "ERR request too large"));
    CHECK(out == "Hello, world\nERR request too large\n");
    std::string slow;
    plugd::line_codec::encode_too_slow(slow);
    CHECK(slow.empty());
}

TEST_CASE("oneshot codec: what arrived is the request, and the connection closes after it") {
    decoder<plugd::oneshot_codec> d;
    d.feed("GET / and more\n\n");
    CHECK(d.seen == strings{"GET / and more\n\n"});
    plugd::oneshot_codec codec;
    std::string out;
    codec.reply_buffer(out) += "as it is";
    CHECK_FALSE(codec.encode_reply(out, 200, false));
    CHECK(out == "as it is");
    CHECK(plugd::oneshot_codec::max_buffered(limit) == limit);
}

TEST_CASE("raw codec: switches to the plugin's stream before the client sends anything") {
    decoder<plugd::raw_codec> d;
    d.feed("");
    CHECK(d.seen == strings{"switch"});
    CHECK(plugd::hands_over_connections(plugd::framing_kind::raw));
    CHECK_FALSE(plugd::hands_over_connections(plugd::framing_kind::http));
}

TEST_CASE("http codec: whole, split at every byte, pipelined, refused") {
    const std::string get = "GET /world HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string post = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
    const std::string chunked =
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\n"
        "llo\r\n0\r\n\r\n";
    CHECK(decode_every_split<plugd::http_codec>(get, false, 256) == strings{"GET /world|world"});
    CHECK(decode_every_split<plugd::http_codec>(get + post + chunked, false, 256) ==
          strings{"GET /world|world", "POST /p|body", "POST /c|hello"});
    // A smuggling attempt between two requests: the first is served, nothing after it.
    const auto smuggled = decode_every_split<plugd::http_codec>(
        get +
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
            "1\r\n\r\n0\r\n\r\n" +
            get,
        false, 256);
    REQUIRE(smuggled.size() == 2);
    CHECK(smuggled[0] == "GET /world|world");
    CHECK(smuggled[1].starts_with("refused 400 "));
    // Too large: refused as soon as the bytes buffered cannot be one request, however split.
    CHECK(decode_every_split<plugd::http_codec>("GET /" + std::string(limit, 'x') +
                                                " HTTP/1.1\r\n") ==
          strings{"refused 431 request header too large"});
}

TEST_CASE("http codec: 100 Continue once, before the body is there") {
    plugd::http_codec codec;
    const std::string head =
        "POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    std::string out;
    CHECK(codec.decode(head, 4 * limit, false).what == frame::kind::incomplete);
    codec.answer_early(out);
    CHECK(out == "HTTP/1.1 100 Continue\r\n\r\n");
    CHECK(codec.decode(head + "h", 4 * limit, false).what == frame::kind::incomplete);
    codec.answer_early(out);
    CHECK(out == "HTTP/1.1 100 Continue\r\n\r\n");  // not twice
    CHECK(codec.decode(head + "hi", 4 * limit, false).what == frame::kind::request);
}

TEST_CASE("http codec: a reply is a response with the handler's status and fields") {
    plugd::http_codec codec;
    const std::string get = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    REQUIRE(codec.decode(get, limit, false).what == frame::kind::request);
    std::string out;
    codec.reply_buffer(out) += "teapot";
    codec.reply_head()->status = 418;
    *codec.reply_head()->fields += "X-A: b\r\n";
    CHECK(codec.encode_reply(out, 418, false));
    CHECK(out.starts_with("HTTP/1.1 418 "));
    CHECK(out.find("\r\nX-A: b\r\n") != std::string::npos);
    CHECK(out.find("Content-Length: 6\r\n") != std::string::npos);
    CHECK(out.ends_with("\r\n\r\nteapot"));
    // The next request starts with a fresh body, status and fields.
    REQUIRE(codec.decode(get, limit, false).what == frame::kind::request);
    CHECK(codec.reply_buffer(out).empty());
    CHECK(codec.reply_head()->status == 200);
    CHECK(codec.reply_head()->fields->empty());
    // Closing: the response says so and the connection does not stay open.
    out.clear();
    CHECK_FALSE(codec.encode_reply(out, 200, true));
    CHECK(out.find("Connection: close\r\n") != std::string::npos);
    // An HTTP/1.0 client without keep-alive gets its answer and the connection closes.
    REQUIRE(codec.decode("GET /x HTTP/1.0\r\n\r\n", limit, false).what == frame::kind::request);
    out.clear();
    CHECK_FALSE(codec.encode_reply(out, 200, false));
    CHECK(out.starts_with("HTTP/1.0 200 "));
}

TEST_CASE("http codec: refusals and a too slow request are answered as HTTP") {
    std::string out;
    plugd::http_codec::encode_refusal(out, frame::refusal(400, "malformed request"));
    CHECK(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    CHECK(out.find("Connection: close\r\n") != std::string::npos);
    CHECK(out.ends_with("malformed request"));
    std::string slow;
    plugd::http_codec::encode_too_slow(slow);
    CHECK(slow.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    CHECK(slow.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("the framing registry: names, lookups and the message listing them") {
    for (const auto* name : {"line", "oneshot", "http", "raw"}) {
        const auto kind = plugd::framing_named(name);
        REQUIRE(kind.has_value());
        CHECK(plugd::to_string(*kind) == name);
    }
    CHECK_FALSE(plugd::framing_named("HTTP").has_value());
    CHECK(plugd::framing_names() == "\"line\", \"oneshot\", \"http\" or \"raw\"");
}
