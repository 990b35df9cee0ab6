// resp's own tests, through plugd's test harness: the plugin in this process, a client
// connection without a server or a port.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

TEST_CASE("PING, ECHO, SET and GET answer as Redis does") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    auto client = host.connect();
    client.write("*1\r\n$4\r\nPING\r\n");
    CHECK(client.read_until("\r\n") == "+PONG\r\n");
    client.write("*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n");
    CHECK(client.read_until("\r\n") == "$5\r\n");
    CHECK(client.read_until("\r\n") == "hello\r\n");
    client.write("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    CHECK(client.read_exactly(13) == "+OK\r\n$2\r\nv1\r\n");
    client.write("GET missing\r\n");  // an inline command, as telnet sends
    CHECK(client.read_until("\r\n") == "$-1\r\n");
    client.close();  // serve() returns once the client has gone
}

TEST_CASE("a command split across reads is answered once it is whole") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    auto client = host.connect();
    client.write("*2\r\n$4\r\nEC");
    client.write("HO\r\n$2\r\nhi\r\n");
    CHECK(client.read_exactly(8) == "$2\r\nhi\r\n");
    client.close();
}

TEST_CASE("a protocol error is answered and closes the connection") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    auto client = host.connect();
    client.write("*1\r\n$x\r\n");
    CHECK(client.read_to_end() == "-ERR Protocol error: invalid length 'x'\r\n");
    client.close();
}

TEST_CASE("values set before a reload are there after it") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    {
        auto client = host.connect();
        client.write("SET greeting hello\r\n");
        CHECK(client.read_until("\r\n") == "+OK\r\n");
        client.close();
    }
    host.reload(nlohmann::json::object());
    auto client = host.connect();
    client.write("GET greeting\r\n");
    CHECK(client.read_exactly(11) == "$5\r\nhello\r\n");
    client.close();
}
