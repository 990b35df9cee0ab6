// main: plugd's command line, in the spirit of nginx's (-c, -t, -s).
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "control/process_setup.hpp"
#include "control/signal_command.hpp"
#include "faults/crash_report.hpp"
#include "log.hpp"
#include "plugins/plugin_seal.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/trial_load.hpp"
#include "server.hpp"
#include "server_options.hpp"
#include "supervision/supervisor.hpp"
#include "tls/ticket_keys.hpp"
#include "tooling/new_plugin.hpp"
#include "worker_environment.hpp"

#include <plugd/version.hpp>

namespace {

constexpr std::string_view usage =
    "usage: plugd [-c FILE] [-t | -s reload|stop|promote|rollback] [--canary PERCENT [--wait]]\n"
    "             [--watch] [--seal FILE] [--version] [--help]\n"
    "       plugd new-plugin NAME [DIR]\n"
    "\n"
    "  -c FILE     the configuration file (default: ./server.json if it exists, otherwise\n"
    "              the built-in default: greeting on 127.0.0.1:8888)\n"
    "  -t          check the configuration and load every plugin, then exit:\n"
    "              0 when it would start, 1 with the error otherwise\n"
    "  -s reload   make the running plugd (the one holding pid_file and serving this\n"
    "              configuration) reload, wait for the outcome and print it: 0 with the\n"
    "              new generation, 1 with the error\n"
    "  -s reload --canary PERCENT [--wait]\n"
    "              a canary: the new versions of the plugin instances that changed take\n"
    "              PERCENT (1 to 99) of new requests, the rest stay on the versions serving;\n"
    "              plugd compares both sides' errors and p99 and promotes or rolls back\n"
    "              the canary by itself (server.json's \"canary\"). Prints its start; with\n"
    "              --wait, then its verdict: 0 when promoted, 1 when rolled back\n"
    "  -s promote  make the running canary serve every new request now\n"
    "  -s rollback send every new request back to the versions the canary ran next to\n"
    "  -s stop     make the running plugd drain and exit, and wait for it\n"
    "  --watch     reload by itself when the config file or a plugin file changes\n"
    "              (with workers: the master watches and reloads every worker)\n"
    "  --seal FILE write a hash of a built plugin into it (plugd_add_plugin() does this\n"
    "              after each link); plugd refuses a sealed file that no longer matches\n"
    "  --version   print the version and the plugin ABI fingerprint\n"
    "  --help      print this help\n"
    "  new-plugin NAME [DIR]\n"
    "              write a new plugin project (handler, test, CMakeLists.txt, server.json,\n"
    "              README) into DIR (default: ./NAME), which must not exist yet\n"
    "\n"
    "Signals: SIGHUP reloads; SIGINT/SIGTERM stop accepting, finish requests in flight,\n"
    "exit 0.\n";

// The folder above the one holding this binary: build/ in the build tree (build/bin/plugd),
// the prefix once installed (bin/plugd). Empty when /proc/self/exe cannot be read.
std::filesystem::path binary_prefix() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path{} : exe.parent_path().parent_path();
}

// Bundled plugins live in lib/plugd under binary_prefix(), both in the build tree
// (build/lib/plugd) and once installed (lib/plugd).
std::filesystem::path bundled_plugin_dir() {
    const auto prefix = binary_prefix();
    if (prefix.empty()) return std::filesystem::current_path() / "lib" / "plugd";
    return (prefix / "lib" / "plugd").lexically_normal();
}

// The prefix plugd is installed in (bin/plugd, lib/cmake/plugd), or empty when it runs
// from a build tree, which find_package(plugd) cannot use.
std::filesystem::path install_prefix() {
    const auto prefix = binary_prefix();
    if (prefix.empty()) return {};
    std::error_code ec;
    for (const char* lib : {"lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"}) {
        if (std::filesystem::exists(prefix / lib / "cmake" / "plugd" / "plugdConfig.cmake", ec))
            return prefix;
    }
    return {};
}

int fail_usage(const std::string& why) {
    std::cerr << "plugd: " << why << "\n\n" << usage;
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view{argv[1]} == "new-plugin") {
        if (argc < 3 || argc > 4) return fail_usage("new-plugin takes NAME and optionally DIR");
        try {
            plugd::write_new_plugin(argv[2], argc == 4 ? argv[3] : argv[2], install_prefix(),
                                    std::cout);
            return 0;
        } catch (const std::exception& e) {
            std::cerr << "plugd: new-plugin: " << e.what() << '\n';
            return 1;
        }
    }
    std::optional<std::filesystem::path> config_file;
    bool test_only = false;
    bool watch = false;
    std::optional<std::string> signal;
    std::optional<unsigned> canary;
    bool wait = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-c") {
            if (i + 1 >= argc) return fail_usage("-c needs a FILE");
            config_file = argv[++i];
        } else if (arg == "-t") {
            test_only = true;
        } else if (arg == "-s") {
            if (i + 1 >= argc) return fail_usage("-s needs reload, stop, promote or rollback");
            signal = argv[++i];
            if (*signal != "reload" && *signal != "stop" && *signal != "promote" &&
                *signal != "rollback") {
                return fail_usage("-s takes reload, stop, promote or rollback, not \"" + *signal +
                                  "\"");
            }
        } else if (arg == "--canary") {
            const std::string_view value = i + 1 < argc ? argv[i + 1] : "";
            unsigned percent = 0;
            const auto [end, ec] =
                std::from_chars(value.data(), value.data() + value.size(), percent);
            if (value.empty() || ec != std::errc{} || end != value.data() + value.size() ||
                percent < 1 || percent > 99) {
                return fail_usage(
                    "--canary needs a PERCENT from 1 to 99 (the share of new "
                    "requests the canary takes), not \"" +
                    std::string{value} + "\"");
            }
            canary = percent;
            ++i;
        } else if (arg == "--wait") {
            wait = true;
        } else if (arg == "--seal") {
            if (i + 1 >= argc) return fail_usage("--seal needs a plugin FILE");
            try {
                std::cout << "plugd: " << plugd::seal_plugin_file(argv[++i]) << '\n';
                return 0;
            } catch (const std::exception& e) {
                std::cerr << "plugd: " << e.what() << '\n';
                return 1;
            }
        } else if (arg == "--trial-load") {
            // Internal: the child a reload runs a new plugin version in first.
            if (i + 1 >= argc) return fail_usage("--trial-load needs a descriptor");
            plugd::run_trial_load(argv[++i]);
        } else if (arg == "--watch") {
            watch = true;
        } else if (arg == "--version" || arg == "-v") {
            std::cout << "plugd " PLUGD_VERSION "\nplugin ABI: " PLUGD_ABI_FINGERPRINT "\n";
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            std::cout << usage;
            return 0;
        } else {
            return fail_usage("unknown argument \"" + std::string{arg} + "\"");
        }
    }

    plugd::server_options options;
    options.bundled_plugin_dir = bundled_plugin_dir();
    options.watch = watch;
    options.worker = plugd::this_process_worker();
    if (options.worker) {
        plugd::log::set_process_tag("worker " + std::to_string(options.worker->index));
        // A crash report tells the master which plugin this worker died in.
        plugd::set_crash_note_file(options.worker->status_file.string() + ".crash");
        // Its TLS listeners encrypt session tickets as the master's other workers do.
        if (options.worker->tickets >= 0) {
            try {
                plugd::adopt_ticket_secret(options.worker->tickets);
            } catch (const std::exception& e) {
                std::cerr << "plugd: " << e.what() << '\n';
                return 1;
            }
        }
    }
    if (canary && signal != "reload") return fail_usage("--canary goes with -s reload");
    if (wait && !canary)
        return fail_usage("--wait goes with -s reload --canary (it waits for the verdict)");
    if (!config_file && std::filesystem::exists("server.json")) config_file = "server.json";
    if (signal) {
        const auto pid_file = config_file ? plugd::pid_file_of(*config_file)
                                          : std::filesystem::current_path() / "plugd.pid";
        const auto config = config_file ? std::filesystem::absolute(*config_file).lexically_normal()
                                        : std::filesystem::path{};
        return plugd::send_signal_command({*signal, canary.value_or(0), wait}, config, pid_file,
                                          std::chrono::seconds{60});
    }
    try {
        // A worker of a master running as root with "user" switches first of all: it reads
        // its configuration and loads every plugin as that user.
        std::optional<uid_t> switched;
        if (options.worker && !options.worker->user.empty())
            switched = plugd::become_worker_user(options.worker->user);
        plugd::server_config cfg;
        if (config_file) {
            cfg = plugd::load_config(*config_file, options.bundled_plugin_dir);
            options.config_file = cfg.source;
        } else {
            cfg = plugd::default_config(options.bundled_plugin_dir);
        }
        const std::string name = config_file ? cfg.source.string() : "the built-in default";
        if (test_only) {
            plugd::check_plugins(cfg);
            std::cerr << "plugd: configuration " << name << " is valid and its "
                      << cfg.plugins.size() << " plugin instance(s) load\n";
            return 0;
        }
        plugd::log::set_threshold(cfg.log.level);
        plugd::log::set_json(cfg.log.json);
        if (switched) {
            plugd::log::info("running as user " + options.worker->user + " (uid " +
                             std::to_string(*switched) + ")");
        }
        plugd::log::info("configuration: " + name);
        if ((cfg.workers > 1 || cfg.supervise) && !options.worker)
            return plugd::supervise(std::move(cfg), options);
        return plugd::serve(std::move(cfg), options);
    } catch (const std::exception& e) {
        if (test_only) {
            std::cerr << "plugd: " << e.what() << "\nplugd: configuration test failed\n";
        } else {
            plugd::log::error(std::string{e.what()} + "; not started");
        }
        return 1;
    }
}
