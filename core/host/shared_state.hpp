// shared_state: the core's plugd::shared_map, one per plugin instance, kept across reloads.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "host/instance_map.hpp"
#include "host/state_snapshot.hpp"

namespace plugd {

/// One instance's map in this process's memory (a single plugd). Striped: a key's stripe
/// has its own mutex, so calls on different keys from different threads rarely meet. The
/// byte budget is one atomic counter, reserved before a write and returned after, so the
/// map never exceeds it.
class shared_map_impl final : public instance_map {
  public:
    /// `owner` names the instance in messages.
    shared_map_impl(std::string owner, std::size_t byte_budget);

    std::optional<std::string> get(std::string_view key) const override;
    void set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0}) override;
    bool erase(std::string_view key) override;
    std::int64_t increment(std::string_view key, std::int64_t delta = 1) override;
    std::size_t size() const override;

    void set_budget(std::size_t bytes) noexcept override {
        budget_.store(bytes, std::memory_order_relaxed);
    }
    std::size_t bytes_used() const noexcept override {
        return used_.load(std::memory_order_relaxed);
    }
    void purge_expired() override;
    void save(const std::filesystem::path& file) const override;
    void load(const std::filesystem::path& file) override;

  private:
    using clock = snapshot_clock;  // persisted expiry times must survive a restart
    struct entry {
        std::string value;
        clock::time_point expires = clock::time_point::max();
    };
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using table = std::unordered_map<std::string, entry, hash, std::equal_to<>>;
    struct stripe {
        mutable std::mutex mutex;
        table entries;
    };

    stripe& stripe_of(std::string_view key) const noexcept;
    void reserve(std::size_t bytes) const;
    void release(std::size_t bytes) const noexcept;
    // Removes the expired entries of `s` (its lock held); returns the bytes freed.
    std::size_t purge(stripe& s, clock::time_point now) noexcept;
    // Inserts or replaces under the stripe's lock; reserves the growth first.
    void put(stripe& s, std::string_view key, std::string value, clock::time_point expires);

    std::string owner_;
    mutable std::atomic<std::size_t> budget_;
    mutable std::atomic<std::size_t> used_{0};
    mutable std::array<stripe, 16> stripes_;
};

/// Every instance's map, by instance name: the part of the host that outlives versions.
/// Where the maps live is decided here, once per process (see placement). Touched only by
/// the control thread (versions keep their own shared_ptr to their map).
class shared_state {
  public:
    enum class placement {
        /// A single plugd: each map in this process's memory (shared_map_impl, the fastest).
        in_process,
        /// A master of workers: one shared memory segment per instance (shared_memory_map),
        /// made here, filled from the state_file, saved to it at stop, and removed when the
        /// instance is dropped or this object goes.
        segments_made_here,
        /// A worker: the master's segments, mapped by name. The master loads and saves
        /// the state files; a worker never touches them.
        segments_of_master,
    };
    /// `master`: the master's pid, for segments_of_master.
    explicit shared_state(placement where = placement::in_process, long master = 0)
        : where_{where}, master_{master} {}

    /// segments_made_here: segments made from now on belong to this user and group, so
    /// that workers running as `"user"` can map them.
    void hand_segments_to(uid_t user, gid_t group) { segment_owner_ = {user, group}; }

    /// The map of instance `name`, created empty (or from `state_file` when one is given
    /// and exists, except for segments_of_master) on first use; later calls (reloads,
    /// while preparing) return it as it is. Throws std::runtime_error when the state file
    /// is unusable, when a worker finds no segment, or when `byte_budget` is more than a
    /// segment made at start can hold (naming /plugins/<name>/shared_bytes).
    std::shared_ptr<instance_map> map_for(const std::string& name, std::size_t byte_budget,
                                          const std::filesystem::path& state_file);
    /// A reload's commit: the instance's new budget and state file.
    void configure(const std::string& name, std::size_t byte_budget,
                   const std::filesystem::path& state_file);
    /// Removes expired entries from every map (called periodically).
    void purge_expired();
    /// Drops the maps of instances no longer configured (versions still draining keep
    /// theirs until they are unloaded; a dropped segment's name is removed, its memory
    /// stays mapped where it is in use).
    void keep_only(const std::set<std::string>& names);
    /// Writes each map that has a state file (graceful stop); nothing for
    /// segments_of_master. Logs an error for each one it could not write and returns false
    /// then.
    bool save_all() const;
    /// segments_of_master, once the master has died without removing them: removes the
    /// segments' names (any worker may; the others find them gone).
    void remove_master_segments() const;

  private:
    struct slot {
        std::shared_ptr<instance_map> map;
        std::filesystem::path state_file;
        std::size_t capacity = 0;  ///< the largest budget it can take; 0: any
    };
    std::shared_ptr<instance_map> make_map(const std::string& name, std::size_t byte_budget,
                                           std::size_t& capacity) const;

    placement where_;
    long master_;
    std::optional<std::pair<uid_t, gid_t>> segment_owner_;
    std::map<std::string, slot> maps_;
};

}  // namespace plugd
