// examples/kv, built against the installed SDK: its data survives code reloads and, with
// state_file, restarts.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

// Serves examples/kv from a folder of its own holding kv.so twice, as kv.so and kv2.so:
// switching the file name in server.json loads a new version (a code reload).
struct kv_server {
    kv_server() : plugins{tmp.path() / "plugins"} {
        std::filesystem::create_directory(plugins);
        const auto built = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "kv" / "kv.so";
        install_plugin(built, plugins, "kv.so");
        install_plugin(built, plugins, "kv2.so");
        use("kv");
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        port = process->port();
        REQUIRE_MESSAGE(process->wait_for_log("serving generation 1"), process->log());
    }
    void use(const std::string& file) {
        std::string text = one_listener_config(plugins, file);
        text.insert(text.find(R"("config": )"), R"("state_file": "kv.state", )");
        cfg = tmp.write("server.json", text);
    }
    std::string ask(const std::string& line) { return plugd::test::ask(port, line); }
    temp_dir tmp;
    std::filesystem::path plugins;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0;
};

}  // namespace

TEST_CASE("kv answers SET, GET, DEL and INCR") {
    kv_server s;
    CHECK(s.ask("SET greeting hello world") == "OK");
    CHECK(s.ask("GET greeting") == "hello world");
    CHECK(s.ask("GET missing") == "NIL");
    CHECK(s.ask("INCR n") == "1");
    CHECK(s.ask("INCR n") == "2");
    CHECK(s.ask("INCR greeting") == "ERR value is not an integer");
    CHECK(s.ask("DEL greeting") == "1");
    CHECK(s.ask("DEL greeting") == "0");
    CHECK(s.ask("GET greeting") == "NIL");
}

TEST_CASE("kv data survives 50 code reloads under load, and a restart through state_file") {
    kv_server s;
    CHECK(s.ask("SET kept before the reloads") == "OK");
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::vector<std::thread> load;
    for (int i = 0; i < 4; ++i) {
        load.emplace_back([&, i] {
            line_client c{s.port};
            const std::string key = "counter" + std::to_string(i);
            for (int expected = 1; !stop; ++expected) {
                c.send("INCR " + key + "\n");
                if (c.read_line() != std::to_string(expected)) {
                    ++failures;
                    return;
                }
            }
        });
    }
    for (int generation = 2; generation <= 51; ++generation) {
        s.use(generation % 2 ? "kv" : "kv2");
        s.process->signal(SIGHUP);
        REQUIRE_MESSAGE(
            s.process->wait_for_log("reload: generation " + std::to_string(generation) + " in"),
            s.process->log());
    }
    stop = true;
    for (auto& t : load) t.join();
    CHECK(failures == 0);
    CHECK(s.process->count_log("plugin p: loaded") == 51);  // each reload was new code
    CHECK(s.ask("GET kept") == "before the reloads");

    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait_exit() == 0);
    s.process.emplace(std::vector<std::string>{"-c", s.cfg.string()});
    s.port = s.process->port();
    REQUIRE(s.process->wait_for_log("serving generation 1"));
    CHECK(s.ask("GET kept") == "before the reloads");
}
