// HTTP framing: what next_http_request finds in buffered bytes, and what RFC 9112 makes it
// refuse (the request-smuggling rules Beast leaves to its user among them).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "framing/http_framing.hpp"

namespace {

using plugd::http_frame;
using plugd::next_http_request;

constexpr std::size_t limit = 4096;

// Frames `input` as a connection would: requests until the bytes run out or one is refused.
struct framed_stream {
    std::vector<std::string> requests;  // "METHOD target body"
    int refused = 0;                    // the refusal's status, 0 if none
    std::string reason;
};

framed_stream frame(std::string input) {
    framed_stream out;
    std::string chunked;
    while (!input.empty()) {
        const http_frame f = next_http_request(input, limit, chunked);
        if (f.what == http_frame::kind::error) {
            out.refused = f.status;
            out.reason = f.reason;
            break;
        }
        if (f.what == http_frame::kind::incomplete) break;
        out.requests.push_back(std::string{f.method} + ' ' + std::string{f.target} + ' ' +
                               std::string{f.body});
        input.erase(0, f.consumed);
    }
    return out;
}

const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

}  // namespace

TEST_CASE("http framing: pipelined requests with a length, chunks and none are each found") {
    const auto s = frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld" +
                         std::string{"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                     "\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"} +
                         "GET /a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(s.refused == 0);
    CHECK(s.requests == std::vector<std::string>{"POST / world", "POST /c abc", "GET /a%20b "});
}

TEST_CASE(
    "http framing: a transfer coding list that does not end in chunked is refused, so "
    "what follows is never read as a second request") {
    for (const char* codings :
         {"identity", "gzip", "chunked, identity", "chunked,identity", "CHUNKED , gzip", ","}) {
        CAPTURE(codings);
        const auto s =
            frame("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + std::string{codings} +
                  "\r\n\r\n" + smuggled);
        CHECK(s.requests.empty());
        CHECK(s.refused == 400);
    }
    // The same list split over two fields (RFC 9112 §6.1: they combine).
    const auto split = frame(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "identity\r\n\r\n0\r\n\r\n" +
        smuggled);
    CHECK(split.requests.empty());
    CHECK(split.refused == 400);
}

TEST_CASE("http framing: chunked after a coding plugd cannot decode is 501, chunked twice 400") {
    const auto gzip = frame(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "0\r\n\r\n");
    CHECK(gzip.requests.empty());
    CHECK(gzip.refused == 501);
    const auto twice =
        frame("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n");
    CHECK(twice.refused == 400);
}

TEST_CASE("http framing: Transfer-Encoding with Content-Length is refused, in either order") {
    for (const std::string fields : {"Transfer-Encoding: identity\r\nContent-Length: 5\r\n",
                                     "Content-Length: 5\r\nTransfer-Encoding: identity\r\n",
                                     "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                                     "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"}) {
        CAPTURE(fields);
        const auto s =
            frame("POST / HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n0\r\n\r\n" + smuggled);
        CHECK(s.requests.empty());
        CHECK(s.refused == 400);
    }
}

TEST_CASE("http framing: Transfer-Encoding in an HTTP/1.0 request is refused") {
    const auto s = frame("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(s.requests.empty());
    CHECK(s.refused == 400);
}

TEST_CASE("http framing: conflicting Content-Length values are refused, equal ones are one") {
    const auto conflict =
        frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody" +
              smuggled);
    CHECK(conflict.requests.empty());
    CHECK(conflict.refused == 400);
    const auto listed = frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nbody");
    CHECK(listed.refused == 400);
    const auto same =
        frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nbody");
    CHECK(same.refused == 0);
    CHECK(same.requests == std::vector<std::string>{"POST / body"});
}

TEST_CASE("http framing: an HTTP/1.1 request needs exactly one Host, HTTP/1.0 may omit it") {
    const auto none = frame("GET /world HTTP/1.1\r\n\r\n");
    CHECK(none.refused == 400);
    CHECK(none.reason == "no Host header field");
    const auto two = frame("GET /world HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    CHECK(two.refused == 400);
    CHECK(two.reason == "more than one Host header field");
    const auto old = frame("GET /world HTTP/1.0\r\n\r\n");
    CHECK(old.refused == 0);
    CHECK(old.requests == std::vector<std::string>{"GET /world "});
}

TEST_CASE("http framing: whitespace between a field name and its colon is refused") {
    const auto s = frame(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
        "Content-Length: 4\r\n\r\n0\r\n\r\n" +
        smuggled);
    CHECK(s.requests.empty());
    CHECK(s.refused == 400);
}

TEST_CASE("http framing: a version other than 1.0 and 1.1 is refused") {
    CHECK(frame("GET / HTTP/2.0\r\nHost: x\r\n\r\n").refused == 400);
}

TEST_CASE("http framing: a refusal comes as soon as the head is whole, before any body") {
    std::string chunked;
    const http_frame f = next_http_request(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", limit, chunked);
    CHECK(f.what == http_frame::kind::error);
    const http_frame partial = next_http_request(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nbo", limit, chunked);
    CHECK(partial.what == http_frame::kind::incomplete);
}

TEST_CASE("http framing: RFC 9112's other malformed heads are refused with 400") {
    for (const std::string head : {
             "GET / HTTP/1.1\r\n Host: x\r\n\r\n",  // whitespace before the first field
             "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",  // obs-fold
             "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n",    // a fold first
             "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
             "GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",  // a bare CR
             "GET / HTTP/1.1\nHost: x\n\n",                     // bare LF line ends
             "GET / HTTP/1.1\r\nHost: x y\r\n\r\n",             // an invalid Host value
             "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
             "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",  // two spaces in the start line
             "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
         }) {
        CAPTURE(head);
        CHECK(frame(head).refused == 400);
    }
    CHECK(frame("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").refused == 0);
    CHECK(frame("GET / HTTP/1.1\r\nHost: example.com:80\r\n\r\n").refused == 0);
}
