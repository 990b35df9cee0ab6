// The Redis bridge's tag on bytes: what a process publishes, and how what comes back is
// told apart: its own (an echo), another process's, or not a plugd's at all.
#include <doctest/doctest.h>

#include <string>

#include "host/topic_bridge.hpp"
#include "host/topic_message.hpp"

namespace {

using plugd::message_type;
using plugd::topic_bridge;
using kind = topic_bridge::decoded::kind;

constexpr topic_bridge::instance_id ours{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr topic_bridge::instance_id theirs{16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1};

std::string value_of(const topic_bridge::instance_id& id, const std::string& payload,
                     message_type type = message_type::text) {
    std::string out;
    topic_bridge::append_value(out, id, *plugd::topic_message::make("chat/x", payload, type, 7));
    return out;
}

}  // namespace

TEST_CASE("topic bridge: a value is plg1, the instance id, the type, then the payload") {
    const std::string v = value_of(ours, "hi", message_type::binary);
    REQUIRE(v.size() == topic_bridge::header_bytes + 2);
    CHECK(v.substr(0, 4) == "plg1");
    CHECK(v.substr(4, 16) ==
          std::string{"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16});
    CHECK(v[20] == '\x01');
    CHECK(v.substr(21) == "hi");
}

TEST_CASE("topic bridge: its own value is an echo, another process's is delivered as it was") {
    CHECK(topic_bridge::decode_value(value_of(ours, "hi"), ours, 100).from == kind::ours);
    const std::string v = value_of(theirs, std::string{"a\0b", 3}, message_type::binary);
    const auto d = topic_bridge::decode_value(v, ours, 100);
    CHECK(d.from == kind::foreign);
    CHECK(d.type == message_type::binary);
    CHECK(d.payload == std::string{"a\0b", 3});
    CHECK(topic_bridge::decode_value(value_of(theirs, ""), ours, 100).from == kind::foreign);
}

TEST_CASE("topic bridge: what no plugd wrote, or what is too large, is malformed") {
    std::string wrong_type = value_of(theirs, "hi");
    wrong_type[20] = '\x02';
    std::string wrong_magic = value_of(theirs, "hi");
    wrong_magic[3] = '2';
    for (const std::string& v : {std::string{"hello"}, std::string{}, wrong_type, wrong_magic,
                                 value_of(theirs, "hi").substr(0, 20)}) {
        CAPTURE(v);
        CHECK(topic_bridge::decode_value(v, ours, 100).from == kind::malformed);
    }
    CHECK(topic_bridge::decode_value(value_of(theirs, "12345"), ours, 5).from == kind::foreign);
    CHECK(topic_bridge::decode_value(value_of(theirs, "123456"), ours, 5).from == kind::malformed);
}

TEST_CASE("topic bridge: each instance id is drawn at random") {
    CHECK(topic_bridge::random_id() != topic_bridge::random_id());
}
