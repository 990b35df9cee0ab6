// sqlite_lookup's tests, through plugd's test harness (<plugd/testing.hpp>), on a
// database made here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <plugd/testing.hpp>

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

namespace {

// A database with table kv(key, value) holding a=1 and b=2, removed at the end.
struct database {
    database() {
        path = std::filesystem::temp_directory_path() /
               ("sqlite_lookup_test." + std::to_string(::getpid()) + ".db");
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db,
                             "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT);"
                             "INSERT INTO kv VALUES('a', '1'), ('b', '2');",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    ~database() { std::filesystem::remove(path); }
    std::filesystem::path path;
};

}  // namespace

TEST_CASE("sqlite_lookup answers a key's value, or NIL") {
    database db;
    plugd::testing::plugin_host host{PLUGIN_FILE, {.config = {{"database", db.path.string()}}}};
    CHECK(host.call("a") == "1");
    CHECK(host.call("zzz") == "NIL");
    CHECK(host.call_concurrently({"a", "b", "a", "b"}) ==
          std::vector<std::string>{"1", "2", "1", "2"});
}

TEST_CASE("sqlite_lookup refuses a config without a database") {
    CHECK_THROWS_WITH_AS(plugd::testing::plugin_host(PLUGIN_FILE),
                         doctest::Contains("\"database\" must name an SQLite file"),
                         std::runtime_error);
}
