// examples/chat through the test harness: the line chat of its raw side, where every line a
// client sends reaches the other clients of the lobby and not the sender. (Its WebSocket
// side is tested against a real plugd with a real client, in plugd's
// tests/integration/websocket_test.cpp.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

TEST_CASE("chat: a line reaches the other clients of the lobby, not its sender") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    auto alice = host.connect();
    auto bob = host.connect();
    auto carol = host.connect();
    // connect() returns once serve() has subscribed: everyone is in the lobby.
    alice.write("hi from alice\n");
    CHECK(bob.read_until("\n") == "hi from alice\n");
    CHECK(carol.read_until("\n") == "hi from alice\n");
    bob.write("hi from bob\n");
    CHECK(alice.read_until("\n") == "hi from bob\n");
    CHECK(carol.read_until("\n") == "hi from bob\n");
    carol.write("bye\n");
    CHECK(alice.read_until("\n") == "bye\n");
    CHECK(bob.read_until("\n") == "bye\n");
}
