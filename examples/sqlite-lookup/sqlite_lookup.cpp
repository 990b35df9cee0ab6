// sqlite_lookup: each line is a key; answers the value of `SELECT value FROM kv WHERE
// key = ?` in an SQLite database, or NIL. libsqlite3 blocks, so every query runs through
// ctx.offload on the core's offload threads: the worker threads keep serving meanwhile.
// Config: "database": the file's path (required).
#include <plugd/plugin.hpp>

#include <sqlite3.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

// One read-only connection per offload thread, opened on first use there and never
// shared between threads (SQLITE_OPEN_NOMUTEX: each is used by its own thread only).
class connections {
  public:
    explicit connections(std::string path) : path_{std::move(path)} {}
    ~connections() {
        for (auto& [thread, db] : open_) sqlite3_close(db);
    }

    sqlite3* for_this_thread() {
        std::lock_guard lock{mutex_};
        auto& db = open_[std::this_thread::get_id()];
        if (!db) db = open(path_);
        return db;
    }

    static sqlite3* open(const std::string& path) {
        sqlite3* db = nullptr;
        if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                            nullptr) != SQLITE_OK) {
            const std::string why = db ? sqlite3_errmsg(db) : "out of memory";
            sqlite3_close(db);
            throw std::runtime_error("cannot open database " + path + ": " + why);
        }
        return db;
    }

  private:
    std::string path_;
    std::mutex mutex_;
    std::map<std::thread::id, sqlite3*> open_;
};

std::optional<std::string> lookup(sqlite3* db, const std::string& key) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?", -1, &raw, nullptr) !=
        SQLITE_OK) {
        throw std::runtime_error(std::string{"query failed: "} + sqlite3_errmsg(db));
    }
    const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt{raw, sqlite3_finalize};
    sqlite3_bind_text(raw, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(raw) != SQLITE_ROW) return std::nullopt;
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    return std::string{text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(raw, 0))};
}

class sqlite_lookup final : public plugd::handler {
  public:
    explicit sqlite_lookup(plugd::context& ctx) : ctx_{ctx} {
        const auto& config = ctx.config();
        if (!config.contains("database") || !config["database"].is_string()) {
            throw std::invalid_argument("\"database\" must name an SQLite file");
        }
        db_ = std::make_shared<connections>(config["database"].get<std::string>());
        // Fail now, with the reason, rather than at the first request.
        lookup(db_->for_this_thread(), "");
    }

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        // The job owns what it uses: it may still run after a cancelled request is gone.
        auto query = [db = db_, key = std::string{req.message()}] {
            return lookup(db->for_this_thread(), key);
        };
        const auto value = co_await ctx_.offload(query);
        out << value.value_or("NIL");
    }

  private:
    plugd::context& ctx_;
    std::shared_ptr<connections> db_;
};

}  // namespace

PLUGD_PLUGIN(sqlite_lookup)
