// reloadable: a plugd serving copies of the test plugins, reloaded by tests as a user
// deploying a new build would.
#pragma once

#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "plugd_process.hpp"

namespace plugd::test {

// A plugd serving copies of the test plugins from its own plugin folder, which tests
// replace file by file as a user deploying a new build would.
struct reloadable {
    explicit reloadable(const std::string& config = R"({ "log_requests": false })",
                        const std::string& limits = "{}", std::vector<std::string> extra = {},
                        std::string listener_framing = "line")
        : plugins{tmp.path() / "plugins"}, framing{std::move(listener_framing)} {
        std::filesystem::create_directory(plugins);
        install_plugin(test_plugin_dir() / "echo.so", plugins, "p.so");
        write_config(config, limits);
        std::vector<std::string> args{"-c", cfg.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        process.emplace(args);
        // Generous bounds: a 5 MB config's trial load under ThreadSanitizer takes seconds.
        port = process->port("main", 30s);
        // Written after the listeners: from here on, signals and the pid file work.
        REQUIRE(process->wait_for_log("serving generation 1", 30s));
    }

    void write_config(const std::string& plugin_config, const std::string& limits = "{}",
                      const std::string& extra_listeners = "") {
        std::string text = one_listener_config(plugins, "p", plugin_config, framing, limits);
        if (!extra_listeners.empty()) {
            text.replace(text.find(" ], \"limits\""), 0, ", " + extra_listeners);
        }
        cfg = tmp.write("server.json", text);
    }

    void use(const std::string& build) {
        install_plugin(test_plugin_dir() / (build + ".so"), plugins, "p.so");
    }

    // Sends SIGHUP and waits for the reload to succeed, as generation `generation`.
    void reload_ok(int generation) {
        process->signal(SIGHUP);
        REQUIRE_MESSAGE(
            process->wait_for_log("reload: generation " + std::to_string(generation) + " "),
            process->log());
    }

    // Sends SIGHUP and waits for the reload to fail (the `nth` failure overall).
    void reload_fails(std::size_t nth) {
        process->signal(SIGHUP);
        REQUIRE_MESSAGE(process->wait_for_log("reload failed: ", 10s, nth), process->log());
    }

    std::string ask(const std::string& message) { return plugd::test::ask(port, message); }

    temp_dir tmp;
    std::filesystem::path plugins;
    std::string framing;  ///< of the listener, in every config write_config() writes
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t port = 0;
};

}  // namespace plugd::test
