// shared_memory_map: ctx.shared() in one POSIX shared memory segment that every worker
// process of a master maps: one map per plugin instance for the whole server, as
// OpenResty's lua_shared_dict is for nginx's workers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "host/instance_map.hpp"

namespace plugd {

/// Crash-consistent by construction. One robust, process-shared mutex guards the segment.
/// The index (open addressing, one 64-bit word per slot: block offset and hash tag) and
/// the blocks its slots point at are the only source of truth: a block (expiry, key,
/// value) is written whole before the slot that points at it is stored, with one atomic
/// store, and a replaced or erased block is freed only after its slot changed. Everything
/// else (free lists, bytes and entries counted) is derived. A process that dies at any
/// instruction while holding the lock leaves at worst a block no slot points at; the next
/// process to lock gets EOWNERDEAD and rebuilds the derived state from the index, which
/// reclaims it. So no write is ever seen torn, nothing another process wrote is lost, and
/// nobody waits for a dead process's lock.
///
/// Budget, time to live, increment and the errors are those of the in-process map
/// (shared_map_rules.hpp). The layout serves budgets up to the one it was created with
/// (capacity()); memory is touched only as entries need it (the segment is sparse).
class shared_memory_map final : public instance_map {
  public:
    /// The segment name of instance `instance` of the master with pid `master`.
    static std::string segment_name(long master, const std::string& instance);

    /// Creates segment `segment` (mode 0600; owned by `owner_ids` (uid, gid) when given,
    /// so workers running as another user can map it) laid out for budgets up to `budget`.
    /// A segment of that name left by a dead process (the same pid, reused) is replaced.
    /// The creating object removes the name when destroyed; mappings elsewhere stay valid.
    /// `owner` names the instance in messages. Throws std::runtime_error naming the
    /// segment and the reason.
    static std::unique_ptr<shared_memory_map> create(
        const std::string& segment, std::string owner, std::size_t budget,
        std::optional<std::pair<uid_t, gid_t>> owner_ids = std::nullopt);
    /// Maps segment `segment`, made by create() in another process. Throws
    /// std::runtime_error naming it when it does not exist or is no such segment.
    static std::unique_ptr<shared_memory_map> open(const std::string& segment, std::string owner);

    ~shared_memory_map() override;
    shared_memory_map(const shared_memory_map&) = delete;
    shared_memory_map& operator=(const shared_memory_map&) = delete;

    std::optional<std::string> get(std::string_view key) const override;
    void set(std::string_view key, std::string_view value,
             std::chrono::milliseconds ttl = std::chrono::milliseconds{0}) override;
    bool erase(std::string_view key) override;
    std::int64_t increment(std::string_view key, std::int64_t delta = 1) override;
    std::size_t size() const override;

    /// Budgets above capacity() are held at capacity() (the master refuses such a reload
    /// before any worker sees it).
    void set_budget(std::size_t bytes) noexcept override;
    std::size_t bytes_used() const noexcept override;
    void purge_expired() override;
    void save(const std::filesystem::path& file) const override;
    void load(const std::filesystem::path& file) override;

    /// The largest budget the segment's layout serves: shared_bytes at its creation.
    std::size_t capacity() const noexcept;
    /// How many times a process found the lock's owner dead and rebuilt the derived state.
    std::uint64_t recoveries() const noexcept;

    /// For tests: throws std::logic_error naming the first inconsistency between the index,
    /// the blocks and the derived state (blocks outside the arena or overlapping, counts or
    /// bytes that differ from the index's).
    void check_integrity() const;
    /// For tests: runs `f` while holding the segment's lock (a child process that dies in
    /// there is a process that died holding it).
    void while_locked(const std::function<void()>& f);

    struct block;  ///< an entry in the arena: expiry, key, value

  private:
    struct header;
    struct probe;
    struct index_view;
    class lock;
    shared_memory_map(std::string segment, std::string owner, char* base, std::size_t bytes,
                      bool created_here);

    index_view index_of(std::uint64_t index_state) const noexcept;
    index_view live_index() const noexcept;
    block* block_at(std::uint64_t offset) const noexcept;
    probe find(std::string_view key, std::uint64_t hash) const noexcept;
    void put(std::string_view key, std::uint64_t hash, std::string_view value,
             std::int64_t expires_ms, std::int64_t now_ms) const;
    void remove(std::size_t slot) const noexcept;
    std::size_t purge(std::int64_t now_ms) const noexcept;
    std::uint64_t allocate(std::size_t bytes) const noexcept;
    void release(std::uint64_t offset, std::size_t bytes) const noexcept;
    void add_free(std::uint64_t offset, std::size_t bytes) const noexcept;
    void rehash(unsigned log2_slots) const noexcept;
    void rebuild_derived() const noexcept;
    void recover() const noexcept;

    std::string segment_;
    std::string owner_;
    char* base_;
    std::size_t bytes_;
    bool created_here_;
    header* h_;
};

}  // namespace plugd
