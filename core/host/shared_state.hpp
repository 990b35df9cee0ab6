// shared_state: the core's plugd::shared_map, one per plugin instance, kept across reloads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include <plugd/shared_map.hpp>

namespace plugd {

/// One instance's map. Striped: a key's stripe has its own mutex, so calls on different
/// keys from different threads rarely meet. The byte budget is one atomic counter,
/// reserved before a write and returned after, so the map never exceeds it.
class shared_map_impl final : public shared_map {
  public:
    /// `owner` names the instance in messages.
    shared_map_impl(std::string owner, std::size_t byte_budget);

    std::optional<std::string> get(std::string_view key) const override;
    void set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0}) override;
    bool erase(std::string_view key) override;
    std::int64_t increment(std::string_view key, std::int64_t delta = 1) override;
    std::size_t size() const override;

    /// Changes the budget (a reload may change `shared_bytes`); entries are kept even when
    /// they already exceed a smaller one: only growth is refused.
    void set_budget(std::size_t bytes) noexcept { budget_.store(bytes, std::memory_order_relaxed); }
    std::size_t bytes_used() const noexcept { return used_.load(std::memory_order_relaxed); }

    /// Removes every entry whose time to live has passed (the periodic sweep).
    void purge_expired();

    /// Writes every live entry to `file` atomically (a temporary file in the same folder,
    /// fsync, rename), times to live as wall-clock times. Throws std::runtime_error naming
    /// the file and the reason; the previous file is then untouched.
    void save(const std::filesystem::path& file) const;
    /// Reads what save() wrote; entries whose time to live has passed are skipped. A
    /// missing file is an empty map; a path that is not a regular file (a FIFO) is refused
    /// without being opened. No length in the file is trusted before it is checked against
    /// the bytes left and the budget. Throws std::runtime_error naming the file, the entry
    /// and its offset.
    void load(const std::filesystem::path& file);

  private:
    using clock = std::chrono::system_clock;  // persisted expiry times must survive a restart
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

/// Throws std::runtime_error (naming /plugins/`instance`/state_file) unless `file` could be
/// saved: it must be a regular file or not exist, and plugd must be able to create a file
/// in its folder (tried, so it holds for root and read-only mounts too). Called at start,
/// `-t`, each reload and after switching to `"user"`.
void check_state_file(const std::filesystem::path& file, const std::string& instance);

/// Every instance's map, by instance name: the part of the host that outlives versions.
/// Touched only by the control thread (versions keep their own shared_ptr to their map).
class shared_state {
  public:
    /// The map of instance `name`, created empty (or from `state_file` when one is given
    /// and exists) on first use; later calls (reloads, while preparing) return it as it
    /// is. Throws std::runtime_error when the state file is unusable.
    std::shared_ptr<shared_map_impl> map_for(const std::string& name, std::size_t byte_budget,
                                             const std::filesystem::path& state_file);
    /// A reload's commit: the instance's new budget and state file.
    void configure(const std::string& name, std::size_t byte_budget,
                   const std::filesystem::path& state_file);
    /// Removes expired entries from every map (called periodically).
    void purge_expired();
    /// Drops the maps of instances no longer configured (versions still draining keep
    /// theirs until they are unloaded).
    void keep_only(const std::set<std::string>& names);
    /// Writes each map that has a state file (graceful stop). Logs an error for each one it
    /// could not write and returns false then.
    bool save_all() const;

  private:
    struct slot {
        std::shared_ptr<shared_map_impl> map;
        std::filesystem::path state_file;
    };
    std::map<std::string, slot> maps_;
};

}  // namespace plugd
