// instance_map: a plugin instance's ctx.shared() as the core holds it: the SDK's calls plus
// what the core does to it (budget, sweep, snapshot).
#pragma once

#include <cstddef>
#include <filesystem>

#include <plugd/shared_map.hpp>

namespace plugd {

/// Implemented in this process's memory (shared_map_impl: a single plugd) or in shared
/// memory all worker processes map (shared_memory_map: with "workers"); shared_state
/// chooses. Every member is thread-safe.
class instance_map : public shared_map {
  public:
    virtual ~instance_map() = default;

    /// Changes the budget (a reload may change `shared_bytes`); entries are kept even when
    /// they already exceed a smaller one: only growth is refused.
    virtual void set_budget(std::size_t bytes) noexcept = 0;
    virtual std::size_t bytes_used() const noexcept = 0;

    /// Removes every entry whose time to live has passed (the periodic sweep).
    virtual void purge_expired() = 0;

    /// Writes every live entry to `file` atomically (state_snapshot.hpp). Throws
    /// std::runtime_error naming the file and the reason; the previous file is then
    /// untouched.
    virtual void save(const std::filesystem::path& file) const = 0;
    /// Adds what save() wrote (read_snapshot's checks and errors).
    virtual void load(const std::filesystem::path& file) = 0;
};

}  // namespace plugd
