// generation_store: the master's copies of what each generation ran (its configuration and
// its plugin files), so it can go back to a generation after the originals have changed:
// the crash-loop rollback.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>

#include "config.hpp"

namespace plugd {

class generation_store {
  public:
    /// Keeps copies under `dir` (writable by this user only; removed by the destructor).
    explicit generation_store(std::filesystem::path dir);
    ~generation_store();
    generation_store(const generation_store&) = delete;
    generation_store& operator=(const generation_store&) = delete;

    /// Copies `cfg` as generation `g`: each plugin file by content (a plugin whose bytes
    /// did not change keeps the same copy, so a worker's reload keeps its running version),
    /// and the config document with plugin_dir pointing at the copies and every other path
    /// absolute. Throws config_error when a file cannot be copied.
    void keep(std::uint64_t g, const server_config& cfg);
    /// Makes generation `g` (kept) the one current_config() names.
    void make_current(std::uint64_t g);
    /// The configuration workers read: a copy of the current generation's.
    std::filesystem::path current_config() const { return dir_ / "current.json"; }
    bool has(std::uint64_t g) const { return kept_.count(g) != 0; }
    /// Drops every kept generation but `keep_a` and `keep_b`.
    void forget_all_but(std::uint64_t keep_a, std::uint64_t keep_b);

  private:
    std::filesystem::path dir_;
    std::map<std::uint64_t, std::filesystem::path> kept_;  ///< generation -> its config copy
};

}  // namespace plugd
