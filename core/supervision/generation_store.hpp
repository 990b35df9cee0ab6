// generation_store: the master's copies of what each generation ran (its configuration and
// its plugin files), so it can go back to a generation after the originals have changed:
// the crash-loop rollback.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>

#include <sys/types.h>

#include "config.hpp"

namespace plugd {

class generation_store {
  public:
    /// Keeps copies under `dir`, writable by this user only and removed by the destructor.
    /// Readable by this user only too, or, given `readers` (the group of the user the
    /// workers switch to), by that group as well: workers read the copies, and must never
    /// be able to change the code they run.
    generation_store(std::filesystem::path dir, std::optional<gid_t> readers);
    ~generation_store();
    generation_store(const generation_store&) = delete;
    generation_store& operator=(const generation_store&) = delete;

    /// Copies `cfg` as generation `g`: each plugin file by content (a plugin whose bytes
    /// did not change keeps the same copy, so a worker's reload keeps its running version),
    /// and the config document with plugin_dir pointing at the copies and every other path
    /// absolute. Throws config_error when a file cannot be copied, std::logic_error when
    /// `g` is kept already: a generation's copy is never replaced, so a rollback to it runs
    /// what it ran.
    void keep(std::uint64_t g, const server_config& cfg);
    /// Keeps generation `g` as a copy of kept generation `from` (a rollback, or the undoing
    /// of a reload, is a new generation that runs an earlier one's files).
    void keep_as(std::uint64_t g, std::uint64_t from);
    /// Makes generation `g` (kept) the one current_config() names, and `g` the number in
    /// current_generation_file(): what a worker started or reloaded now serves, and as
    /// which generation.
    void make_current(std::uint64_t g);
    /// The configuration workers read: a copy of the current generation's.
    std::filesystem::path current_config() const { return dir_ / "current.json"; }
    /// The current generation's number, for workers (see worker_environment).
    std::filesystem::path current_generation_file() const { return dir_ / "current.generation"; }
    std::uint64_t current() const noexcept { return current_; }
    /// Kept generation `g`'s configuration copy (std::out_of_range when not kept).
    const std::filesystem::path& config_of(std::uint64_t g) const { return kept_.at(g); }
    bool has(std::uint64_t g) const { return kept_.count(g) != 0; }
    /// Generation `g` (kept) is a canary's: canary_config() holds its configuration and
    /// canary_generation_file() its number, which a worker reads when told to start the
    /// canary, or when it starts while one runs. Kept by forget_all_but until end_canary().
    void make_canary(std::uint64_t g);
    /// The canary is decided: its copy may go (once it is neither current nor kept).
    void end_canary() noexcept { canary_ = 0; }
    std::filesystem::path canary_config() const { return dir_ / "canary.json"; }
    std::filesystem::path canary_generation_file() const { return dir_ / "canary.generation"; }
    /// Drops every kept generation not in `keep` (0s are ignored).
    void forget_all_but(std::initializer_list<std::uint64_t> keep);

  private:
    std::filesystem::path dir_;
    std::map<std::uint64_t, std::filesystem::path> kept_;  ///< generation -> its config copy
    std::uint64_t current_ = 0;
    std::uint64_t canary_ = 0;  ///< a canary's generation while it runs
};

}  // namespace plugd
