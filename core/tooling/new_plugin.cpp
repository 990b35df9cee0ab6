// new_plugin: the project files, written into a temporary folder and renamed into place,
// so a failure leaves nothing half written.
#include "tooling/new_plugin.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

namespace plugd {
namespace {

// Every "@name@" (and "@port@", "@prefix@") in `text` replaced.
std::string substitute(std::string text, const std::string& key, const std::string& value) {
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
        text.replace(at, key.size(), value);
    return text;
}

// Names the generated code or build cannot take: C++ keywords and the names it uses
// (class @name@ inside code that says std:: and plugd::), the symbols PLUGD_PLUGIN
// defines, and CMake's reserved target names.
const char* reserved_because(const std::string& name) {
    static const std::set<std::string> keywords{"alignas",       "alignof",     "and",
                                                "and_eq",        "asm",         "auto",
                                                "bitand",        "bitor",       "bool",
                                                "break",         "case",        "catch",
                                                "char",          "char8_t",     "char16_t",
                                                "char32_t",      "class",       "compl",
                                                "concept",       "const",       "consteval",
                                                "constexpr",     "constinit",   "const_cast",
                                                "continue",      "co_await",    "co_return",
                                                "co_yield",      "decltype",    "default",
                                                "delete",        "do",          "double",
                                                "dynamic_cast",  "else",        "enum",
                                                "explicit",      "export",      "extern",
                                                "false",         "float",       "for",
                                                "friend",        "goto",        "if",
                                                "inline",        "int",         "long",
                                                "mutable",       "namespace",   "new",
                                                "noexcept",      "not",         "not_eq",
                                                "nullptr",       "operator",    "or",
                                                "or_eq",         "private",     "protected",
                                                "public",        "register",    "reinterpret_cast",
                                                "requires",      "return",      "short",
                                                "signed",        "sizeof",      "static",
                                                "static_assert", "static_cast", "struct",
                                                "switch",        "template",    "this",
                                                "thread_local",  "throw",       "true",
                                                "try",           "typedef",     "typeid",
                                                "typename",      "union",       "unsigned",
                                                "using",         "virtual",     "void",
                                                "volatile",      "wchar_t",     "while",
                                                "xor",           "xor_eq",      "std",
                                                "plugd",         "main"};
    static const std::set<std::string> targets{"all",  "clean",   "help",       "install",
                                               "test", "package", "edit_cache", "rebuild_cache"};
    if (keywords.count(name)) return "a C++ keyword or a name the generated code uses";
    if (name.starts_with("plugd_")) return "plugd_ names are the SDK's";
    if (targets.count(name)) return "a target name CMake reserves";
    return nullptr;
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || !(std::islower(static_cast<unsigned char>(name[0])))) {
        return false;
    }
    for (const char c : name) {
        if (!std::islower(static_cast<unsigned char>(c)) &&
            !std::isdigit(static_cast<unsigned char>(c)) && c != '_')
            return false;
    }
    return true;
}

bool port_free(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return true;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return free;
}

// A port that depends on the name (so two projects rarely meet) in 18000-18999, away from
// plugd's own defaults, and free now.
std::uint16_t pick_port(const std::string& name) {
    std::uint32_t h = 2166136261u;
    for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    for (std::uint32_t i = 0; i < 1000; ++i) {
        const auto port = static_cast<std::uint16_t>(18000 + (h + i) % 1000);
        if (port_free(port)) return port;
    }
    return static_cast<std::uint16_t>(18000 + h % 1000);
}

constexpr const char* cmake_lists =
    R"(# @name@: a plugd plugin, and its test through plugd's test harness.
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=@prefix@
#   cmake --build build
#   ctest --test-dir build --output-on-failure
#   plugd -c server.json --watch
cmake_minimum_required(VERSION 3.25)
project(@name@ LANGUAGES CXX)

find_package(plugd REQUIRED)
plugd_add_plugin(@name@ @name@.cpp)

enable_testing()
find_package(doctest REQUIRED)
plugd_add_plugin_test(@name@ @name@_test.cpp)
target_link_libraries(@name@_test PRIVATE doctest::doctest)
)";

constexpr const char* handler_source =
    R"(// @name@: a plugd plugin. Answers "<greeting>, <message>"; the greeting comes from the
// instance's config in server.json.
#include <plugd/plugin.hpp>

#include <string>

namespace {

class @name@ final : public plugd::handler {
  public:
    // Read and check the config here; to refuse a value, throw std::invalid_argument naming
    // the key: plugd then keeps serving the previous version and logs why.
    explicit @name@(plugd::context& ctx) : greeting_{ctx.config().value("greeting", "Hello")} {}

    // Called concurrently from several threads: guard shared state, or use ctx.shared().
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        out << greeting_ << ", " << req.message();
        co_return;
    }

  private:
    std::string greeting_;
};

}  // namespace

PLUGD_PLUGIN(@name@)
)";

constexpr const char* test_source =
    R"(// @name@'s tests: the built plugin in this process, called through plugd's test harness
// (<plugd/testing.hpp>): no server, no socket.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

TEST_CASE("@name@ answers with the configured greeting") {
    plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"greeting", "Hi"}}}};
    CHECK(host.call("world") == "Hi, world");
}

TEST_CASE("@name@ answers calls from several threads at once") {
    plugd::testing::plugin_host host{PLUGIN_FILE};
    const std::vector<std::string> replies = host.call_concurrently({"a", "b", "c", "d"});
    CHECK(replies == std::vector<std::string>{"Hello, a", "Hello, b", "Hello, c", "Hello, d"});
}
)";

constexpr const char* server_json = R"({
  "plugin_dir": "build",
  "pid_file": "build/@name@.pid",
  "plugins": { "@name@": { "file": "@name@", "config": { "greeting": "Hello" } } },
  "listeners": [
    { "name": "main", "address": "127.0.0.1", "port": @port@, "framing": "http", "plugin": "@name@" }
  ]
}
)";

constexpr const char* readme = R"(# @name@

A plugd plugin: answers `<greeting>, <message>`.

```sh
cmake -S . -B build -DCMAKE_PREFIX_PATH=@prefix@   # configure, once
cmake --build build                                # build: build/@name@.so
ctest --test-dir build --output-on-failure         # test: @name@_test.cpp, no server needed
plugd -c server.json --watch                       # run: serves http://127.0.0.1:@port@/
```

Then `curl http://127.0.0.1:@port@/world` answers `Hello, world`. With `--watch`, every
`cmake --build build` is picked up by the running server: requests in flight finish on the
old build, new ones get the new build, and a build that fails to load is refused while the
old one keeps serving (the log says why).

- `@name@.cpp`: the handler. `handle` is called for every request, from several threads.
- `@name@_test.cpp`: its tests, through `plugd::testing::plugin_host`.
- `server.json`: serves `build/@name@.so` over HTTP on 127.0.0.1:@port@; change `framing`
  to `"line"` for a line protocol (`nc 127.0.0.1 @port@`).

From here to production: plugd's docs/writing-plugins.md.
)";

}  // namespace

void write_new_plugin(const std::string& name, const std::filesystem::path& dir,
                      const std::filesystem::path& prefix, std::ostream& out) {
    namespace fs = std::filesystem;
    if (!valid_name(name)) {
        throw std::runtime_error(
            "\"" + name +
            "\" cannot name a plugin: use lower-case letters, digits and '_', starting with a "
            "letter (it becomes the C++ class, the file " +
            name + ".so and the instance name)");
    }
    if (const char* why = reserved_because(name)) {
        throw std::runtime_error("\"" + name + "\" cannot name a plugin: it is " + why +
                                 "; choose another name");
    }
    std::error_code ec;
    if (fs::exists(fs::symlink_status(dir, ec))) {
        throw std::runtime_error(dir.string() +
                                 " already exists; plugd new-plugin never overwrites anything: "
                                 "name a folder that does not exist yet");
    }
    fs::path target = fs::absolute(dir).lexically_normal();
    if (target.filename().empty()) target = target.parent_path();  // "DIR/" as typed
    fs::path hidden{"."};
    hidden += target.filename();
    hidden += ".new";
    const fs::path staging = target.parent_path() / hidden;
    fs::create_directories(target.parent_path(), ec);
    if (!fs::create_directory(staging, ec)) {
        throw std::runtime_error("cannot create " + staging.string() + ": " +
                                 (ec ? ec.message()
                                     : "it exists (remove it: a previous "
                                       "new-plugin was interrupted)"));
    }
    const std::uint16_t port = pick_port(name);
    const std::string shown_prefix =
        prefix.empty() ? "<where plugd is installed>" : prefix.string();
    const auto write = [&](const char* file, const char* text) {
        std::string body =
            substitute(substitute(substitute(text, "@name@", name), "@port@", std::to_string(port)),
                       "@prefix@", shown_prefix);
        std::ofstream f{staging / file, std::ios::binary};
        f << body;
        if (!f.flush()) throw std::runtime_error("cannot write " + (staging / file).string());
    };
    try {
        write("CMakeLists.txt", cmake_lists);
        write((name + ".cpp").c_str(), handler_source);
        write((name + "_test.cpp").c_str(), test_source);
        write("server.json", server_json);
        write("README.md", readme);
        write(".gitignore", "build/\n");
        // Never replaces: fails, writing nothing, if `dir` appeared meanwhile.
        if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0)
            throw std::runtime_error(std::string{"cannot move it into place: "} +
                                     std::strerror(errno));
    } catch (const std::exception& e) {
        fs::remove_all(staging, ec);
        throw std::runtime_error("writing the project into " + target.string() + ": " + e.what());
    }
    out << "plugd: wrote the plugin project \"" << name << "\" into " << target.string() << "\n";
    if (prefix.empty()) {
        out << "plugd: this plugd runs from its build tree: install it first (cmake --install "
               "<its build folder> --prefix <a prefix>) and pass that prefix below\n";
    }
    out << "next:\n"
        << "  cd " << dir.string() << "\n"
        << "  cmake -S . -B build -DCMAKE_PREFIX_PATH=" << shown_prefix << "\n"
        << "  cmake --build build\n"
        << "  ctest --test-dir build --output-on-failure\n"
        << "  plugd -c server.json --watch      # then: curl http://127.0.0.1:" << port
        << "/world\n";
}

}  // namespace plugd
