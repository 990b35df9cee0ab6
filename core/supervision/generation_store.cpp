// generation_store: copies on disk; plugin files stored by a hash of their bytes.
#include "supervision/generation_store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugins/plugin_version.hpp"
#include "worker_environment.hpp"

namespace plugd {
namespace {

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in{p, std::ios::binary};
    if (!in) throw config_error(p.string() + ": cannot read it to keep a copy for rollback");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// A stored copy's folder: the hash the loader compares versions by, so identical builds
// share one copy.
std::string content_name(const plugin_spec& p) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx",
                  static_cast<unsigned long long>(plugin_file_hash(p)));
    return text;
}

void write_all(const std::filesystem::path& p, const std::string& bytes) {
    const auto partial = p.string() + ".partial";
    {
        std::ofstream out{partial, std::ios::binary | std::ios::trunc};
        out << bytes;
        if (!out.flush()) throw config_error(partial + ": cannot write a copy for rollback");
    }
    ::chmod(partial.c_str(), 0644);
    std::filesystem::rename(partial, p);
}

}  // namespace

generation_store::generation_store(std::filesystem::path dir, std::optional<gid_t> readers)
    : dir_{std::move(dir)} {
    std::filesystem::remove_all(dir_);  // a previous master's, left by a crash
    std::filesystem::create_directories(dir_ / "plugins");
    // Everything inside is readable by all and writable by this user only, whatever the
    // umask; the folder itself decides who gets in: this user, and the workers' group.
    ::chmod((dir_ / "plugins").c_str(), 0755);
    if (readers && ::chown(dir_.c_str(), static_cast<uid_t>(-1), *readers) != 0)
        throw config_error(dir_.string() +
                           ": cannot hand the folder of copies to the "
                           "workers' group: " +
                           std::strerror(errno));
    ::chmod(dir_.c_str(), readers ? 0750 : 0700);
}

generation_store::~generation_store() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void generation_store::keep(std::uint64_t g, const server_config& cfg) {
    if (has(g))
        throw std::logic_error("generation " + std::to_string(g) +
                               " is kept already: a generation number is never given twice");
    auto doc = nlohmann::json::parse(read_all(cfg.source));
    doc["plugin_dir"] = (dir_ / "plugins").string();
    doc["pid_file"] = cfg.pid_file.string();
    // The master serves the admin endpoint: its workers need neither its address nor its
    // token (readable by the master's user only).
    doc.erase("admin");
    for (const auto& p : cfg.plugins) {
        const std::string bytes = read_all(p.file);
        const std::string name = content_name(p);
        const auto folder = dir_ / "plugins" / name;
        const auto copy = folder / p.file.filename();
        if (!std::filesystem::exists(copy)) {
            std::filesystem::create_directories(folder);
            ::chmod(folder.c_str(), 0755);
            write_all(copy, bytes);
        }
        auto& entry = doc["plugins"][p.name];
        entry["file"] = (std::filesystem::path{name} / p.file.filename()).string();
        if (!p.state_file.empty()) entry["state_file"] = p.state_file.string();
    }
    // A listener's TLS files are not copied: a worker reads them where server.json names
    // them at each reload (how a certificate rotates). Relative names would resolve against
    // this folder: the copy names them by their resolved, absolute paths.
    if (doc.contains("listeners") && doc["listeners"].is_array() &&
        doc["listeners"].size() == cfg.listeners.size()) {
        for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
            const auto& l = cfg.listeners[i];
            auto& entry = doc["listeners"][i];
            if (!l.tls || !entry.is_object() || !entry.contains("tls")) continue;
            auto& tls = entry["tls"];
            tls["certificate"] = std::filesystem::absolute(l.tls->certificate).string();
            tls["private_key"] = std::filesystem::absolute(l.tls->private_key).string();
            if (!l.tls->client_ca.empty())
                tls["client_ca"] = std::filesystem::absolute(l.tls->client_ca).string();
        }
    }
    const auto file = dir_ / ("generation-" + std::to_string(g) + ".json");
    write_all(file, doc.dump(2));
    kept_[g] = file;
}

void generation_store::keep_as(std::uint64_t g, std::uint64_t from) {
    if (has(g))
        throw std::logic_error("generation " + std::to_string(g) +
                               " is kept already: a generation number is never given twice");
    const auto file = dir_ / ("generation-" + std::to_string(g) + ".json");
    write_all(file, read_all(kept_.at(from)));
    kept_[g] = file;
}

void generation_store::make_current(std::uint64_t g) {
    write_all(current_config(), read_all(kept_.at(g)));
    write_generation_file(current_generation_file(), g);
    current_ = g;
}

void generation_store::make_canary(std::uint64_t g) {
    write_all(canary_config(), read_all(kept_.at(g)));
    write_generation_file(canary_generation_file(), g);
    canary_ = g;
}

void generation_store::forget_all_but(std::initializer_list<std::uint64_t> keep) {
    for (auto it = kept_.begin(); it != kept_.end();) {
        if (it->first == current_ || it->first == canary_ ||
            std::find(keep.begin(), keep.end(), it->first) != keep.end()) {
            ++it;
            continue;
        }
        std::error_code ignored;
        std::filesystem::remove(it->second, ignored);
        it = kept_.erase(it);
    }
    // Plugin copies no kept generation names any more.
    std::map<std::string, bool> used;
    for (const auto& [g, file] : kept_) {
        const auto doc = nlohmann::json::parse(read_all(file));
        for (const auto& [name, p] : doc["plugins"].items())
            used[p["file"].get<std::string>()] = true;
    }
    std::vector<std::filesystem::path> unused;
    for (const auto& folder : std::filesystem::directory_iterator{dir_ / "plugins"}) {
        for (const auto& f : std::filesystem::directory_iterator{folder.path()}) {
            const auto rel = (folder.path().filename() / f.path().filename()).string();
            if (!used.count(rel)) unused.push_back(f.path());
        }
    }
    for (const auto& f : unused) {
        std::error_code ignored;
        std::filesystem::remove(f, ignored);
        std::filesystem::remove(f.parent_path(), ignored);  // only if now empty
    }
}

}  // namespace plugd
