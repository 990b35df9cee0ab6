// RESP on bytes: commands as Redis reads them, and replies and pushes decoded whole, split
// at every byte and pipelined; every refusal (not RESP, above a cap).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "host/resp.hpp"

namespace {

using plugd::resp::protocol_error;
using plugd::resp::reader;
using plugd::resp::value;
using kind = value::kind;

value bulk(std::string text) {
    return {kind::bulk, std::move(text), 0, {}};
}
value array(std::vector<value> items) {
    return {kind::array, {}, 0, std::move(items)};
}

// Every value in `bytes`, taken as a client takes them: the buffer grows by `step` bytes at
// a time and each whole value is removed from its front. Fails if bytes are left over.
std::vector<value> read_all(const reader& r, std::string_view bytes, std::size_t step) {
    std::vector<value> out;
    std::string buffer;
    for (std::size_t fed = 0; fed < bytes.size();) {
        const std::size_t n = std::min(step, bytes.size() - fed);
        buffer.append(bytes.substr(fed, n));
        fed += n;
        std::size_t consumed = 0;
        while (auto v = r.next(buffer, consumed)) {
            REQUIRE(consumed > 0);
            buffer.erase(0, consumed);
            out.push_back(std::move(*v));
        }
        CHECK(consumed == 0);
    }
    CHECK(buffer.empty());
    return out;
}

// A pmessage push as Redis sends it to a PSUBSCRIBE client.
const std::string pmessage =
    "*4\r\n$8\r\npmessage\r\n$7\r\nplugd:*\r\n$15\r\nplugd:chat/room\r\n$9\r\nhi\r\nthere\r\n";

}  // namespace

TEST_CASE("resp: a command is an array of bulk strings, pipelined by appending") {
    std::string out;
    const std::string_view publish[] = {"PUBLISH", "plugd:chat", "a\r\nb"};
    plugd::resp::append_command(out, publish);
    CHECK(out == "*3\r\n$7\r\nPUBLISH\r\n$10\r\nplugd:chat\r\n$4\r\na\r\nb\r\n");
    const std::string_view ping[] = {"PING"};
    const std::string_view empty[] = {"ECHO", ""};
    plugd::resp::append_command(out, ping);
    plugd::resp::append_command(out, empty);
    const auto values = read_all(reader{64}, out, out.size());
    REQUIRE(values.size() == 3);
    CHECK(values[0] == array({bulk("PUBLISH"), bulk("plugd:chat"), bulk("a\r\nb")}));
    CHECK(values[1] == array({bulk("PING")}));
    CHECK(values[2] == array({bulk("ECHO"), bulk("")}));
}

TEST_CASE("resp: every kind of reply, whole and split at every byte") {
    const std::string stream =
        "+OK\r\n-ERR invalid password\r\n:42\r\n:-7\r\n$-1\r\n*-1\r\n*0\r\n"
        "$0\r\n\r\n" +
        pmessage +
        "*3\r\n$10\r\npsubscribe\r\n$7\r\nplugd:*\r\n:1\r\n"
        "*2\r\n*1\r\n:1\r\n*1\r\n*1\r\n+deep\r\n";
    const std::vector<value> expected{
        {kind::simple, "OK", 0, {}},
        {kind::error, "ERR invalid password", 0, {}},
        {kind::integer, "", 42, {}},
        {kind::integer, "", -7, {}},
        {},
        {},
        array({}),
        bulk(""),
        array({bulk("pmessage"), bulk("plugd:*"), bulk("plugd:chat/room"), bulk("hi\r\nthere")}),
        array({bulk("psubscribe"), bulk("plugd:*"), {kind::integer, "", 1, {}}}),
        array(
            {array({{kind::integer, "", 1, {}}}), array({array({{kind::simple, "deep", 0, {}}})})}),
    };
    const reader r{64};
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        CAPTURE(step);
        CHECK(read_all(r, stream, step) == expected);
    }
}

TEST_CASE("resp: a value cut anywhere is not whole yet, and consumes nothing") {
    const reader r{64};
    for (std::size_t cut = 0; cut < pmessage.size(); ++cut) {
        CAPTURE(cut);
        std::size_t consumed = 99;
        CHECK_FALSE(r.next(std::string_view{pmessage}.substr(0, cut), consumed));
        CHECK(consumed == 0);
    }
    std::size_t consumed = 0;
    CHECK(r.next(pmessage + "+OK\r\n", consumed));
    CHECK(consumed == pmessage.size());
}

TEST_CASE("resp: what is not RESP is refused") {
    const reader r{64};
    for (const std::string bad :
         {"?what\r\n", "+OK\n", "+O\rK\r\n", ":12a\r\n", ":+1\r\n", ":\r\n", "$-2\r\n",
          "$3\r\nabcd\r\n", "*-5\r\n", ":99999999999999999999\r\n", "$x\r\n"}) {
        CAPTURE(bad);
        std::size_t consumed = 0;
        CHECK_THROWS_AS(r.next(bad, consumed), protocol_error);
    }
}

TEST_CASE("resp: the caps on sizes, elements and nesting hold, also before the bytes arrive") {
    const reader r{8, 3, 2};
    std::size_t consumed = 0;
    CHECK(r.next("$8\r\n12345678\r\n", consumed));
    CHECK_THROWS_AS(r.next("$9\r\n", consumed), protocol_error);  // announced too long
    CHECK_THROWS_AS(r.next("+123456789\r\n", consumed), protocol_error);
    CHECK_THROWS_AS(r.next("+123456789", consumed), protocol_error);  // before its end
    CHECK_FALSE(r.next("+12345678\r", consumed));                     // may still end at 8
    CHECK(r.next("*3\r\n:1\r\n:2\r\n:3\r\n", consumed));
    CHECK_THROWS_AS(r.next("*4\r\n", consumed), protocol_error);
    CHECK(r.next("*1\r\n*1\r\n:1\r\n", consumed));
    CHECK_THROWS_AS(r.next("*1\r\n*1\r\n*1\r\n", consumed), protocol_error);
}
