// examples/sqlite-lookup, built against the installed SDK: lookups in a real SQLite
// database through ctx.offload.
#include <doctest/doctest.h>

#include <sqlite3.h>

#include <filesystem>

#include "plugd_process.hpp"

using namespace plugd::test;

namespace {

void make_database(const std::filesystem::path& file) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db,
                                "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT);"
                                "INSERT INTO kv VALUES ('world', 'Hello, world');"
                                "INSERT INTO kv VALUES ('answer', '42');",
                                nullptr, nullptr, &error);
    CHECK_MESSAGE(rc == SQLITE_OK, (error ? error : ""));
    sqlite3_free(error);
    sqlite3_close(db);
}

std::string config_for(const std::filesystem::path& database) {
    const auto dir = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "sqlite-lookup";
    return one_listener_config(dir, "sqlite_lookup",
                               R"({ "database": ")" + database.string() + R"(" })");
}

}  // namespace

TEST_CASE("sqlite-lookup answers values from the database, NIL for a missing key") {
    temp_dir tmp;
    make_database(tmp.path() / "lookup.db");
    plugd_process p{
        {"-c", tmp.write("server.json", config_for(tmp.path() / "lookup.db")).string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1"));
    line_client c{port};
    c.send("world\nanswer\nnothing\n");
    CHECK(c.read_line() == "Hello, world");
    CHECK(c.read_line() == "42");
    CHECK(c.read_line() == "NIL");
}

TEST_CASE("sqlite-lookup refuses a database it cannot open, saying so") {
    temp_dir tmp;
    const auto r = run_plugd(
        {"-t", "-c", tmp.write("server.json", config_for(tmp.path() / "absent.db")).string()});
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.output.find("failed to start: cannot open database " +
                                (tmp.path() / "absent.db").string()) != std::string::npos,
                  r.output);
}
