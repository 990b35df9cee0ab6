// examples/resp (framing raw), built against the installed SDK, asked by Debian's redis-cli;
// and the project `plugd new-plugin` wrote, served by a real plugd.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

const char* redis_cli() {
    for (const char* path : {"/usr/bin/redis-cli", "/usr/local/bin/redis-cli"}) {
        if (::access(path, X_OK) == 0) return path;
    }
    return nullptr;
}

std::filesystem::path built(const std::string& project) {
    return std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / project;
}

// redis-cli's output for one command, without its final line break.
std::string cli(std::uint16_t port, std::vector<std::string> command) {
    command.insert(command.begin(), {"-p", std::to_string(port)});
    const auto r = run_program(redis_cli(), command);
    REQUIRE_MESSAGE(r.status == 0, r.output);
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

}  // namespace

TEST_CASE("resp answers redis-cli: PING, ECHO, SET and GET on the shared state") {
    if (!redis_cli()) return skip_test("redis-cli is not installed (apt-get install redis-tools)");
    one_listener_server s{"resp", "{}", "raw", "{}", built("resp")};
    CHECK(cli(s.port, {"PING"}) == "PONG");
    CHECK(cli(s.port, {"ECHO", "hello"}) == "hello");  // quoted only on a terminal
    CHECK(cli(s.port, {"--no-raw", "ECHO", "hello"}) == "\"hello\"");
    CHECK(cli(s.port, {"SET", "greeting", "hi there"}) == "OK");
    CHECK(cli(s.port, {"GET", "greeting"}) == "hi there");
    CHECK(cli(s.port, {"--no-raw", "GET", "missing"}) == "(nil)");
    CHECK(cli(s.port, {"--no-raw", "FLY"}) == "(error) ERR unknown command 'FLY'");
}

TEST_CASE("the plugin project plugd new-plugin wrote answers over HTTP in a real plugd") {
    // Built and tested by the install test from the generated files, unchanged.
    const auto dir = built("scaffold") / "build";
    temp_dir tmp;
    const auto cfg = tmp.write(
        "server.json", one_listener_config(dir, "scaffold", R"({"greeting": "Hi"})", "http"));
    plugd_process p{{"-c", cfg.string()}};
    const auto r = http_request(p.port(), "GET", "/world");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "Hi, world");
}
