// Least privilege: plugins load only from trusted files in plugin_dir; "user" drops root.
#include <doctest/doctest.h>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// A private plugin folder holding a copy of echo as p.so, and a config using it.
struct plugin_folder {
    plugin_folder() : dir{tmp.path() / "plugins"} {
        std::filesystem::create_directory(dir);
        ::chmod(dir.c_str(), 0755);
        install_plugin(test_plugin_dir() / "echo.so", dir, "p.so");
        cfg = tmp.write("server.json", one_listener_config(dir, "p"));
    }
    run_result check() const { return run_plugd({"-t", "-c", cfg.string()}); }
    temp_dir tmp;
    std::filesystem::path dir;
    std::filesystem::path cfg;
};

}  // namespace

TEST_CASE("a plugin file writable by other users is refused, with the fix") {
    plugin_folder f;
    REQUIRE(f.check().status == 0);
    ::chmod((f.dir / "p.so").c_str(), 0666);
    const auto r = f.check();
    CHECK(r.status == 1);
    CHECK(contains(r.output, "p.so is writable by other users (mode 0666)"));
    CHECK(contains(r.output, "fix it with: chmod go-w " + (f.dir / "p.so").string()));
}

TEST_CASE("a plugin folder writable by a shared group is refused, by a private group not") {
    plugin_folder f;
    ::chmod(f.dir.c_str(), 0775);
    CHECK(f.check().status == 0);  // owner's own primary group (usergroups, umask 002)
    const struct group* shared = ::getgrnam("nogroup");
    REQUIRE(shared != nullptr);
    REQUIRE(::chown(f.dir.c_str(), ::geteuid(), shared->gr_gid) == 0);
    const auto r = f.check();
    CHECK(r.status == 1);
    CHECK(contains(r.output, f.dir.string() + " is writable by other users (mode 0775)"));
}

TEST_CASE("a symbolic link leading out of plugin_dir is refused") {
    plugin_folder f;
    std::filesystem::remove(f.dir / "p.so");
    std::filesystem::create_symlink(test_plugin_dir() / "echo.so", f.dir / "p.so");
    const auto r = f.check();
    CHECK(r.status == 1);
    CHECK(contains(r.output, "outside plugin_dir"));
    CHECK(contains(r.output, "plugins load only from plugin_dir"));
}

TEST_CASE("\"user\" drops root after binding, and reloads still work as that user") {
    if (::geteuid() != 0) {
        return skip_test("not running as root: dropping privileges cannot be tested here");
    }
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    temp_dir tmp;
    // nobody must be able to read the config for reloads, to remove the pid file, and to
    // load the reload's plugin: the plugins are copied into a root-owned folder beside the
    // config, so the test does not depend on the mode of the folders the build tree is in
    // (a checkout inside `mktemp -d`'s 0700 folder is not searchable by nobody).
    ::chown(tmp.path().c_str(), nobody->pw_uid, nobody->pw_gid);
    ::chmod(tmp.path().c_str(), 0755);
    const auto plugins = tmp.path() / "plugins";
    std::filesystem::create_directory(plugins);
    ::chmod(plugins.c_str(), 0755);
    for (const char* name : {"echo.so", "echo_v2.so"}) {
        std::filesystem::copy_file(test_plugin_dir() / name, plugins / name);
        ::chmod((plugins / name).c_str(), 0644);
    }
    std::string text = one_listener_config(plugins, "echo");
    text.replace(text.find("\"threads\""), 0, R"("user": "nobody", )");
    const auto cfg = tmp.write("server.json", text);
    ::chmod(cfg.c_str(), 0644);
    plugd_process p{{"-c", cfg.string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("now running as user nobody"));
    std::ifstream status{"/proc/" + std::to_string(p.pid()) + "/status"};
    std::string line;
    while (std::getline(status, line) && line.rfind("Uid:", 0) != 0) {
    }
    CHECK(line.find("\t" + std::to_string(nobody->pw_uid) + "\t") != std::string::npos);
    {
        line_client c{port};
        c.send("x\n");
        CHECK(c.read_line() == "v1:x");
    }
    text.replace(text.find("\"file\": \"echo\""), 14, "\"file\": \"echo_v2\"");
    std::ofstream{cfg} << text;
    p.signal(SIGHUP);
    REQUIRE_MESSAGE(p.wait_for_log("reload: generation 2 "), p.log());
    line_client c{port};
    c.send("y\n");
    CHECK(c.read_line() == "v2:y");
}
