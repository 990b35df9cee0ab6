// shared_memory_map: the segment's layout, its robust lock, the index, the allocator and
// the rebuild after a crash.
#include "host/shared_memory_map.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "host/shared_map_rules.hpp"
#include "host/state_snapshot.hpp"
#include "log.hpp"

namespace plugd {
namespace {

namespace rules = shared_map_rules;

// Layout, version 1:
//   [header, one page][index area 0][index area 1][arena of blocks]
// The two index areas take turns: a rehash (to grow, or to clear tombstones) fills the
// other one and switches with one atomic store, so a crash mid-rehash leaves the old one
// whole. The area not in use is also the rebuild's scratch space, so the rebuild needs no
// heap (it runs inside a failed lock, where an exception has nowhere to go).
constexpr char segment_magic[16] = "plugd-shm-map 1";
constexpr std::size_t page = 4096;
constexpr std::size_t granule = 16;   // blocks are aligned to and sized in these
constexpr unsigned offset_bits = 40;  // a slot: tag (24 bits) | offset / granule
constexpr std::uint64_t offset_mask = (std::uint64_t{1} << offset_bits) - 1;
constexpr std::uint64_t empty_slot = 0;  // no block is at offset 0 (the header is)
constexpr std::uint64_t tombstone = 1;   // nor at offset 16
// Free blocks by size class: up to 1 KiB one class per size (16, 32, ... 1024 bytes), so a
// block freed is reused as it is by the next entry of its size; above, one class per power
// of two ([2^k, 2^(k+1)) bytes).
constexpr std::size_t exact_class_limit = 1024;
constexpr unsigned exact_classes = exact_class_limit / 16;  // 64
constexpr unsigned free_classes = 128;
constexpr unsigned first_index_log2 = 6;
constexpr std::int64_t no_expiry = std::numeric_limits<std::int64_t>::max();

}  // namespace

struct shared_memory_map::block {
    std::int64_t expires_ms;  ///< wall clock, ms since the epoch; no_expiry for none
    std::uint32_t key_size;
    std::uint32_t value_size;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
    std::string_view key() noexcept { return {bytes(), key_size}; }
    std::string_view value() noexcept { return {bytes() + key_size, value_size}; }
};

namespace {

static_assert(sizeof(shared_memory_map::block) == granule);
using block = shared_memory_map::block;

// A free block's first 16 bytes (derived state: only meaningful while it is free).
struct free_block {
    std::uint64_t next;   ///< offset of the next free block of its bucket, 0 at the end
    std::uint64_t bytes;  ///< its size
};

std::size_t round_up(std::size_t n, std::size_t to) noexcept {
    return (n + to - 1) / to * to;
}

std::size_t block_bytes(std::size_t key, std::size_t value) noexcept {
    return round_up(sizeof(block) + key + value, granule);
}

unsigned floor_log2(std::uint64_t n) noexcept {
    return 63 - std::countl_zero(n);
}
unsigned ceil_log2(std::uint64_t n) noexcept;

// The class a free block of `bytes` is listed in.
unsigned class_of(std::uint64_t bytes) noexcept {
    return bytes <= exact_class_limit ? static_cast<unsigned>(bytes / granule) - 1
                                      : exact_classes + floor_log2(bytes) - 10;
}

// The lowest class whose every block holds `bytes`.
unsigned first_class_holding(std::uint64_t bytes) noexcept {
    return bytes <= exact_class_limit ? static_cast<unsigned>(bytes / granule) - 1
                                      : exact_classes + ceil_log2(bytes) - 10;
}

unsigned ceil_log2(std::uint64_t n) noexcept {
    return n <= 1 ? 0 : 64 - std::countl_zero(n - 1);
}

// FNV-1a, then a finalizer spreading every bit to the low bits (the home slot) and the
// high ones (the tag). Its own, not std::hash: the layout must not depend on a library's.
std::uint64_t hash_of(std::string_view key) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char c : key) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

std::uint64_t make_slot(std::uint64_t offset, std::uint64_t hash) noexcept {
    return (hash >> offset_bits << offset_bits) | (offset / granule);
}
std::uint64_t offset_of(std::uint64_t slot) noexcept {
    return (slot & offset_mask) * granule;
}
bool holds_entry(std::uint64_t slot) noexcept {
    return slot > tombstone;
}

std::int64_t now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t expiry_after(std::chrono::milliseconds ttl) noexcept {
    if (ttl.count() <= 0) return no_expiry;
    const std::int64_t now = now_ms();
    return ttl.count() > no_expiry - now ? no_expiry : now + ttl.count();
}

std::runtime_error segment_error(const std::string& segment, const std::string& what) {
    return std::runtime_error("shared memory " + segment + ": " + what);
}

}  // namespace

struct shared_memory_map::header {
    char magic[16];
    std::uint64_t segment_bytes;
    std::uint64_t capacity;     ///< the largest budget the layout serves
    std::uint64_t max_slots;    ///< slots each index area has room for
    std::uint64_t index_at[2];  ///< byte offsets of the index areas
    std::uint64_t arena_begin;
    std::uint64_t arena_end;
    pthread_mutex_t mutex;  ///< process-shared and robust
    std::atomic<std::uint64_t> budget;
    std::atomic<std::uint64_t> recoveries;
    // The source of truth, with the slots and blocks: the area in use (bit 0) and log2 of
    // its slots (bits 8..), one word so that a rehash switches both at once.
    std::atomic<std::uint64_t> index_state;
    // Derived, rebuilt from the index after a crash.
    std::atomic<std::uint64_t> used;  ///< cost of the entries in the index (read unlocked)
    std::uint64_t live;               ///< slots holding an entry (expired ones included)
    std::uint64_t tombstones;
    std::uint64_t expiring;  ///< entries with a time to live
    std::uint64_t top;       ///< the arena above it was never handed out
    std::uint64_t free_heads[free_classes];
    std::uint64_t nonempty_classes[free_classes / 64];  ///< a bit per class with a block
};

struct shared_memory_map::probe {
    static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    std::size_t found = none;      ///< the key's slot
    std::size_t insert_at = none;  ///< where a new key goes: the first tombstone or empty
};

// The segment's lock. A process that died holding it hands the next locker EOWNERDEAD:
// it rebuilds the derived state, then marks the mutex consistent.
class shared_memory_map::lock {
  public:
    explicit lock(const shared_memory_map& m) : m_{m} {
        const int rc = ::pthread_mutex_lock(&m_.h_->mutex);
        if (rc == EOWNERDEAD) {
            m_.recover();
        } else if (rc != 0) {
            // ENOTRECOVERABLE: only if a process unlocked without making it consistent,
            // which this code never does.
            throw segment_error(
                m_.segment_, std::string{"cannot lock: "} + std::strerror(rc) + "; restart plugd");
        }
    }
    ~lock() { ::pthread_mutex_unlock(&m_.h_->mutex); }
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

  private:
    const shared_memory_map& m_;
};

// The live index area (its slots and its mask), read under the lock.
struct shared_memory_map::index_view {
    std::atomic<std::uint64_t>* slots;
    std::size_t mask;
};

std::string shared_memory_map::segment_name(long master, const std::string& instance) {
    // Instance names are letters, digits, '_', '-' and '.' (config.cpp): safe here.
    return "/plugd-" + std::to_string(master) + "-" + instance;
}

shared_memory_map::shared_memory_map(std::string segment, std::string owner, char* base,
                                     std::size_t bytes, bool created_here)
    : segment_{std::move(segment)},
      owner_{std::move(owner)},
      base_{base},
      bytes_{bytes},
      created_here_{created_here},
      h_{reinterpret_cast<header*>(base)} {}

shared_memory_map::~shared_memory_map() {
    ::munmap(base_, bytes_);
    if (created_here_) ::shm_unlink(segment_.c_str());
}

std::unique_ptr<shared_memory_map> shared_memory_map::create(
    const std::string& segment, std::string owner, std::size_t budget,
    std::optional<std::pair<uid_t, gid_t>> owner_ids) {
    static_assert(sizeof(header) <= page);
    // Sized for the most entries the budget admits (each costs entry_overhead at least),
    // at most half full; the arena twice the budget, so fragmentation never refuses what
    // the budget admits in practice. Pages are only backed once touched.
    const std::size_t max_entries = budget / rules::entry_overhead + 1;
    const std::size_t max_slots =
        std::bit_ceil(std::max<std::size_t>(2 * max_entries, std::size_t{1} << first_index_log2));
    const std::size_t index_bytes = round_up(max_slots * sizeof(std::uint64_t), page);
    const std::size_t arena_bytes = round_up(2 * budget + page, page);
    const std::size_t total = page + 2 * index_bytes + arena_bytes;

    int fd = ::shm_open(segment.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        // Left by a process that had this pid before and did not stop cleanly.
        ::shm_unlink(segment.c_str());
        fd = ::shm_open(segment.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) throw segment_error(segment, std::string{"cannot create: "} + std::strerror(errno));
    const auto fail = [&](const std::string& step) {
        const int error = errno;
        ::close(fd);
        ::shm_unlink(segment.c_str());
        return segment_error(segment, "cannot " + step + ": " + std::strerror(error));
    };
    if (owner_ids && ::fchown(fd, owner_ids->first, owner_ids->second) != 0)
        throw fail("hand it to the workers' user (fchown)");
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0)
        throw fail("size it to " + std::to_string(total) + " bytes");
    void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) throw fail("map it");
    ::close(fd);

    auto* h = new (base) header{};  // the memory is zero: a fresh object in it
    h->segment_bytes = total;
    h->capacity = budget;
    h->max_slots = max_slots;
    h->index_at[0] = page;
    h->index_at[1] = page + index_bytes;
    h->arena_begin = page + 2 * index_bytes;
    h->arena_end = total;
    h->top = h->arena_begin;
    h->budget = budget;
    h->index_state = std::uint64_t{std::min<unsigned>(first_index_log2, floor_log2(max_slots))}
                     << 8;
    pthread_mutexattr_t attributes;
    ::pthread_mutexattr_init(&attributes);
    ::pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutex_init(&h->mutex, &attributes);
    ::pthread_mutexattr_destroy(&attributes);
    std::memcpy(h->magic, segment_magic, sizeof segment_magic);
    return std::unique_ptr<shared_memory_map>{
        new shared_memory_map{segment, std::move(owner), static_cast<char*>(base), total, true}};
}

std::unique_ptr<shared_memory_map> shared_memory_map::open(const std::string& segment,
                                                           std::string owner) {
    const int fd = ::shm_open(segment.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        throw segment_error(segment, std::string{"cannot open: "} + std::strerror(errno) +
                                         " (the master makes it before it starts a worker; "
                                         "is it still running?)");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < page) {
        ::close(fd);
        throw segment_error(segment, "is not a plugd shared state segment (too small)");
    }
    const auto total = static_cast<std::size_t>(st.st_size);
    void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int error = errno;
    ::close(fd);
    if (base == MAP_FAILED)
        throw segment_error(segment, std::string{"cannot map it: "} + std::strerror(error));
    const auto* h = static_cast<const header*>(base);
    if (std::memcmp(h->magic, segment_magic, sizeof segment_magic) != 0 ||
        h->segment_bytes != total) {
        ::munmap(base, total);
        throw segment_error(segment, "is not a plugd shared state segment of this version");
    }
    return std::unique_ptr<shared_memory_map>{
        new shared_memory_map{segment, std::move(owner), static_cast<char*>(base), total, false}};
}

// ---- the index -------------------------------------------------------------------------

shared_memory_map::index_view shared_memory_map::index_of(std::uint64_t state) const noexcept {
    return {reinterpret_cast<std::atomic<std::uint64_t>*>(base_ + h_->index_at[state & 1]),
            (std::size_t{1} << (state >> 8)) - 1};
}

shared_memory_map::index_view shared_memory_map::live_index() const noexcept {
    return index_of(h_->index_state.load(std::memory_order_relaxed));
}

shared_memory_map::block* shared_memory_map::block_at(std::uint64_t offset) const noexcept {
    return reinterpret_cast<block*>(base_ + offset);
}

shared_memory_map::probe shared_memory_map::find(std::string_view key,
                                                 std::uint64_t hash) const noexcept {
    const index_view index = live_index();
    const std::uint64_t tag = hash >> offset_bits;
    probe p;
    for (std::size_t i = hash & index.mask, n = 0; n <= index.mask; i = (i + 1) & index.mask, ++n) {
        const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
        if (!holds_entry(s)) {
            if (p.insert_at == probe::none) p.insert_at = i;
            if (s == empty_slot) return p;
            continue;
        }
        if (s >> offset_bits != tag) continue;
        block* b = block_at(offset_of(s));
        if (b->key() == key) {
            p.found = i;
            return p;
        }
    }
    return p;
}

void shared_memory_map::remove(std::size_t slot) const noexcept {
    const index_view index = live_index();
    const std::uint64_t s = index.slots[slot].load(std::memory_order_relaxed);
    block* b = block_at(offset_of(s));
    // Followed by an empty slot, no probe goes past this one: it can be empty too.
    const bool last =
        index.slots[(slot + 1) & index.mask].load(std::memory_order_relaxed) == empty_slot;
    index.slots[slot].store(last ? empty_slot : tombstone, std::memory_order_release);
    // The entry is gone from here on; what follows is derived.
    if (!last) ++h_->tombstones;
    --h_->live;
    if (b->expires_ms != no_expiry) --h_->expiring;
    h_->used.fetch_sub(rules::cost(b->key_size, b->value_size), std::memory_order_relaxed);
    release(offset_of(s), block_bytes(b->key_size, b->value_size));
}

std::size_t shared_memory_map::purge(std::int64_t now) const noexcept {
    if (h_->expiring == 0) return 0;
    const index_view index = live_index();
    std::size_t freed = 0;
    // Backwards: removing a slot may turn the ones before it from tombstone to empty, never
    // the ones after it, which this walk has seen already.
    for (std::size_t i = index.mask + 1; i-- > 0;) {
        const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
        if (!holds_entry(s)) continue;
        block* b = block_at(offset_of(s));
        if (b->expires_ms > now) continue;
        freed += rules::cost(b->key_size, b->value_size);
        remove(i);
    }
    return freed;
}

void shared_memory_map::rehash(unsigned log2_slots) const noexcept {
    const std::uint64_t state = h_->index_state.load(std::memory_order_relaxed);
    const index_view from = live_index();
    const unsigned to_area = 1 - static_cast<unsigned>(state & 1);
    const std::uint64_t to_state = to_area | (std::uint64_t{log2_slots} << 8);
    const index_view to = index_of(to_state);
    std::memset(static_cast<void*>(to.slots), 0, (to.mask + 1) * sizeof(std::uint64_t));
    for (std::size_t i = 0; i <= from.mask; ++i) {
        const std::uint64_t s = from.slots[i].load(std::memory_order_relaxed);
        if (!holds_entry(s)) continue;
        std::size_t j = hash_of(block_at(offset_of(s))->key()) & to.mask;
        while (to.slots[j].load(std::memory_order_relaxed) != empty_slot) j = (j + 1) & to.mask;
        to.slots[j].store(s, std::memory_order_relaxed);
    }
    h_->index_state.store(to_state, std::memory_order_release);  // the switch
    h_->tombstones = 0;
    // The old area's pages go back to the system until it is used again.
    ::madvise(static_cast<void*>(from.slots), (from.mask + 1) * sizeof(std::uint64_t), MADV_REMOVE);
}

// ---- the arena -------------------------------------------------------------------------

void shared_memory_map::add_free(std::uint64_t offset, std::size_t bytes) const noexcept {
    auto* f = reinterpret_cast<free_block*>(base_ + offset);
    const unsigned c = class_of(bytes);
    f->next = h_->free_heads[c];
    f->bytes = bytes;
    h_->free_heads[c] = offset;
    h_->nonempty_classes[c / 64] |= std::uint64_t{1} << (c % 64);
}

void shared_memory_map::release(std::uint64_t offset, std::size_t bytes) const noexcept {
    if (offset + bytes == h_->top) {
        h_->top = offset;  // the untouched end grows back
        return;
    }
    add_free(offset, bytes);
}

std::uint64_t shared_memory_map::allocate(std::size_t bytes) const noexcept {
    // Unlinks the block `link` points at (of class `c`), returning what is left over.
    const auto take = [&](std::uint64_t& link, unsigned c) {
        const std::uint64_t offset = link;
        const auto* f = reinterpret_cast<const free_block*>(base_ + offset);
        const std::uint64_t size = f->bytes;
        link = f->next;
        if (h_->free_heads[c] == 0) h_->nonempty_classes[c / 64] &= ~(std::uint64_t{1} << (c % 64));
        if (size > bytes) add_free(offset + bytes, size - bytes);
        return offset;
    };
    // A freed block of the same size first (exact classes), else the smallest class whose
    // every block is big enough, split.
    for (unsigned c = first_class_holding(bytes); c < free_classes;) {
        const std::uint64_t bits = h_->nonempty_classes[c / 64] >> (c % 64);
        if (bits == 0) {
            c = (c / 64 + 1) * 64;
            continue;
        }
        c += static_cast<unsigned>(std::countr_zero(bits));
        return take(h_->free_heads[c], c);
    }
    if (h_->arena_end - h_->top >= bytes) {
        const std::uint64_t offset = h_->top;
        h_->top += bytes;
        return offset;
    }
    // The class below may hold one big enough: first fit.
    if (bytes > exact_class_limit) {
        const unsigned c = class_of(bytes);
        for (std::uint64_t* link = &h_->free_heads[c]; *link != 0;
             link = &reinterpret_cast<free_block*>(base_ + *link)->next) {
            if (reinterpret_cast<const free_block*>(base_ + *link)->bytes >= bytes)
                return take(*link, c);
        }
    }
    return 0;
}

void shared_memory_map::rebuild_derived() const noexcept {
    const std::uint64_t state = h_->index_state.load(std::memory_order_relaxed);
    const index_view index = live_index();
    // Scratch: the index area not in use, big enough for an offset per entry.
    auto* offsets = reinterpret_cast<std::uint64_t*>(base_ + h_->index_at[1 - (state & 1)]);
    std::size_t n = 0;
    std::uint64_t used = 0, tombstones = 0, expiring = 0;
    for (std::size_t i = 0; i <= index.mask; ++i) {
        const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
        if (s == tombstone) ++tombstones;
        if (!holds_entry(s)) continue;
        block* b = block_at(offset_of(s));
        offsets[n++] = offset_of(s);
        used += rules::cost(b->key_size, b->value_size);
        expiring += b->expires_ms != no_expiry ? 1 : 0;
    }
    std::sort(offsets, offsets + n);
    // Free space: the gaps between the blocks the index reaches (a block a dead process
    // allocated but never published, or freed but never listed, is in one of them).
    std::fill(std::begin(h_->free_heads), std::end(h_->free_heads), 0);
    std::fill(std::begin(h_->nonempty_classes), std::end(h_->nonempty_classes), 0);
    std::uint64_t cursor = h_->arena_begin;
    for (std::size_t k = 0; k < n; ++k) {
        if (offsets[k] > cursor) add_free(cursor, offsets[k] - cursor);
        const block* b = block_at(offsets[k]);
        cursor = offsets[k] + block_bytes(b->key_size, b->value_size);
    }
    h_->top = cursor;
    h_->live = n;
    h_->tombstones = tombstones;
    h_->expiring = expiring;
    h_->used.store(used, std::memory_order_relaxed);
}

void shared_memory_map::recover() const noexcept {
    rebuild_derived();
    h_->recoveries.fetch_add(1, std::memory_order_relaxed);
    ::pthread_mutex_consistent(&h_->mutex);
    try {
        log::warn("plugin " + owner_ +
                      ": a process died holding the lock of its shared state; rebuilt from "
                      "the index (" +
                      std::to_string(h_->live) + " entries, " +
                      std::to_string(h_->used.load(std::memory_order_relaxed)) +
                      " bytes): nothing another process wrote is lost",
                  {log::tag("plugin", owner_)});
    } catch (...) {
        // Out of memory for the line: the state is right all the same.
    }
}

// ---- the map ---------------------------------------------------------------------------

void shared_memory_map::put(std::string_view key, std::uint64_t hash, std::string_view value,
                            std::int64_t expires_ms, std::int64_t now) const {
    probe p = find(key, hash);
    if (p.found != probe::none &&
        block_at(offset_of(live_index().slots[p.found].load()))->expires_ms <= now) {
        remove(p.found);  // expired: as if it were not there
        p = find(key, hash);
    }
    const auto old_block = [&] { return block_at(offset_of(live_index().slots[p.found].load())); };
    const std::size_t before =
        p.found == probe::none ? 0 : rules::cost(old_block()->key_size, old_block()->value_size);
    const std::size_t after = rules::cost(key.size(), value.size());
    const auto fits = [&] {
        const std::size_t used = h_->used.load(std::memory_order_relaxed);
        const std::size_t budget = h_->budget.load(std::memory_order_relaxed);
        return after <= before || (used <= budget && budget - used >= after - before);
    };
    const auto full = [&] {
        return rules::full(owner_, h_->used.load(std::memory_order_relaxed),
                           h_->budget.load(std::memory_order_relaxed));
    };
    if (!fits()) {
        // Full: entries whose time to live has passed make room first.
        if (purge(now) == 0) throw full();
        p = find(key, hash);
        if (!fits()) throw full();
    }
    if (p.found == probe::none) {
        // At most three quarters of the slots in use, tombstones included; growing keeps a
        // new area at most half full.
        const index_view index = live_index();
        if ((h_->live + h_->tombstones + 1) * 4 > (index.mask + 1) * 3) {
            const unsigned log2 = std::max(
                ceil_log2(2 * (h_->live + 1)),
                static_cast<unsigned>(h_->index_state.load(std::memory_order_relaxed) >> 8));
            rehash(std::min(log2, floor_log2(h_->max_slots)));
            p = find(key, hash);
        }
    }
    const std::size_t bytes = block_bytes(key.size(), value.size());
    std::uint64_t offset = allocate(bytes);
    if (offset == 0) {
        rebuild_derived();  // coalesces the gaps between blocks
        offset = allocate(bytes);
        if (offset == 0) throw full();
    }
    // The block is written whole before a slot points at it.
    block* b = block_at(offset);
    b->expires_ms = expires_ms;
    b->key_size = static_cast<std::uint32_t>(key.size());
    b->value_size = static_cast<std::uint32_t>(value.size());
    std::memcpy(b->bytes(), key.data(), key.size());
    std::memcpy(b->bytes() + key.size(), value.data(), value.size());
    const index_view index = live_index();
    const std::size_t slot = p.found != probe::none ? p.found : p.insert_at;
    const std::uint64_t previous = index.slots[slot].load(std::memory_order_relaxed);
    index.slots[slot].store(make_slot(offset, hash), std::memory_order_release);
    // The new entry is in from here on; what follows is derived.
    if (p.found != probe::none) {
        block* old = block_at(offset_of(previous));
        if (old->expires_ms != no_expiry) --h_->expiring;
        h_->used.fetch_sub(before, std::memory_order_relaxed);
        release(offset_of(previous), block_bytes(old->key_size, old->value_size));
    } else {
        ++h_->live;
        if (previous == tombstone) --h_->tombstones;
    }
    if (expires_ms != no_expiry) ++h_->expiring;
    h_->used.fetch_add(after, std::memory_order_relaxed);
}

std::optional<std::string> shared_memory_map::get(std::string_view key) const {
    const std::uint64_t hash = hash_of(key);
    lock held{*this};
    const probe p = find(key, hash);
    if (p.found == probe::none) return std::nullopt;
    block* b = block_at(offset_of(live_index().slots[p.found].load()));
    if (b->expires_ms != no_expiry && b->expires_ms <= now_ms()) {
        remove(p.found);
        return std::nullopt;
    }
    return std::string{b->value()};
}

void shared_memory_map::set(std::string_view key, std::string_view value,
                            std::chrono::milliseconds ttl) {
    const std::uint64_t hash = hash_of(key);
    const std::int64_t expires = expiry_after(ttl);
    lock held{*this};
    put(key, hash, value, expires, now_ms());
}

bool shared_memory_map::erase(std::string_view key) {
    const std::uint64_t hash = hash_of(key);
    lock held{*this};
    const probe p = find(key, hash);
    if (p.found == probe::none) return false;
    const bool live =
        block_at(offset_of(live_index().slots[p.found].load()))->expires_ms > now_ms();
    remove(p.found);
    return live;
}

std::int64_t shared_memory_map::increment(std::string_view key, std::int64_t delta) {
    const std::uint64_t hash = hash_of(key);
    lock held{*this};
    const std::int64_t now = now_ms();
    std::int64_t current = 0;
    std::int64_t expires = no_expiry;
    const probe p = find(key, hash);
    if (p.found != probe::none) {
        block* b = block_at(offset_of(live_index().slots[p.found].load()));
        if (b->expires_ms > now) {
            const auto n = rules::parse_integer(b->value());
            if (!n) throw rules::not_an_integer(owner_);
            current = *n;
            expires = b->expires_ms;
        }
    }
    std::int64_t next = 0;
    if (__builtin_add_overflow(current, delta, &next)) throw rules::would_overflow(owner_);
    char text[24];
    const auto written = std::to_chars(std::begin(text), std::end(text), next).ptr;
    put(key, hash, std::string_view{text, static_cast<std::size_t>(written - text)}, expires, now);
    return next;
}

std::size_t shared_memory_map::size() const {
    lock held{*this};
    if (h_->expiring == 0) return h_->live;
    const index_view index = live_index();
    const std::int64_t now = now_ms();
    std::size_t live = 0;
    for (std::size_t i = 0; i <= index.mask; ++i) {
        const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
        if (holds_entry(s) && block_at(offset_of(s))->expires_ms > now) ++live;
    }
    return live;
}

void shared_memory_map::set_budget(std::size_t bytes) noexcept {
    h_->budget.store(std::min<std::uint64_t>(bytes, h_->capacity), std::memory_order_relaxed);
}

std::size_t shared_memory_map::bytes_used() const noexcept {
    return h_->used.load(std::memory_order_relaxed);
}

std::size_t shared_memory_map::capacity() const noexcept {
    return h_->capacity;
}

std::uint64_t shared_memory_map::recoveries() const noexcept {
    return h_->recoveries.load(std::memory_order_relaxed);
}

void shared_memory_map::purge_expired() {
    lock held{*this};
    purge(now_ms());
}

void shared_memory_map::save(const std::filesystem::path& file) const {
    snapshot_writer out{file};
    {
        lock held{*this};
        const index_view index = live_index();
        const std::int64_t now = now_ms();
        for (std::size_t i = 0; i <= index.mask; ++i) {
            const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
            if (!holds_entry(s)) continue;
            block* b = block_at(offset_of(s));
            if (b->expires_ms <= now) continue;
            out.add(b->key(), b->value(),
                    b->expires_ms == no_expiry
                        ? snapshot_clock::time_point::max()
                        : snapshot_clock::time_point{std::chrono::milliseconds{b->expires_ms}});
        }
    }
    out.commit();
}

void shared_memory_map::load(const std::filesystem::path& file) {
    read_snapshot(file, owner_, h_->budget.load(std::memory_order_relaxed),
                  [&](std::string& key, std::string& value, snapshot_clock::time_point expires) {
                      const std::int64_t expires_ms =
                          expires == snapshot_clock::time_point::max()
                              ? no_expiry
                              : std::chrono::duration_cast<std::chrono::milliseconds>(
                                    expires.time_since_epoch())
                                    .count();
                      const std::uint64_t hash = hash_of(key);
                      lock held{*this};
                      put(key, hash, value, expires_ms, now_ms());
                  });
}

void shared_memory_map::check_integrity() const {
    lock held{*this};
    const index_view index = live_index();
    const auto wrong = [&](const std::string& what) {
        return std::logic_error("shared memory " + segment_ + ": " + what);
    };
    std::vector<std::pair<std::uint64_t, std::uint64_t>> blocks;  // offset, end
    std::uint64_t used = 0, tombstones = 0, expiring = 0;
    for (std::size_t i = 0; i <= index.mask; ++i) {
        const std::uint64_t s = index.slots[i].load(std::memory_order_relaxed);
        if (s == tombstone) ++tombstones;
        if (!holds_entry(s)) continue;
        const std::uint64_t offset = offset_of(s);
        if (offset < h_->arena_begin || offset + sizeof(block) > h_->arena_end)
            throw wrong("slot " + std::to_string(i) + " points outside the arena");
        block* b = block_at(offset);
        const std::uint64_t end = offset + block_bytes(b->key_size, b->value_size);
        if (end > h_->top) throw wrong("slot " + std::to_string(i) + "'s block ends above top");
        if (s >> offset_bits != hash_of(b->key()) >> offset_bits)
            throw wrong("slot " + std::to_string(i) + "'s tag is not its key's");
        if (find(b->key(), hash_of(b->key())).found != i)
            throw wrong("slot " + std::to_string(i) + " is not where its key is found");
        blocks.emplace_back(offset, end);
        used += rules::cost(b->key_size, b->value_size);
        expiring += b->expires_ms != no_expiry ? 1 : 0;
    }
    std::sort(blocks.begin(), blocks.end());
    for (std::size_t k = 1; k < blocks.size(); ++k) {
        if (blocks[k].first < blocks[k - 1].second)
            throw wrong("blocks at " + std::to_string(blocks[k - 1].first) + " and " +
                        std::to_string(blocks[k].first) + " overlap");
    }
    if (blocks.size() != h_->live || tombstones != h_->tombstones || expiring != h_->expiring ||
        used != h_->used.load())
        throw wrong("derived counts differ from the index (entries " + std::to_string(h_->live) +
                    " vs " + std::to_string(blocks.size()) + ", bytes " +
                    std::to_string(h_->used.load()) + " vs " + std::to_string(used) + ")");
    // Free blocks lie in the gaps, none overlapping an entry.
    for (unsigned b = 0; b < free_classes; ++b) {
        const bool listed = (h_->nonempty_classes[b / 64] >> (b % 64)) & 1;
        if (listed != (h_->free_heads[b] != 0))
            throw wrong("size class " + std::to_string(b) + " is marked wrongly");
        for (std::uint64_t f = h_->free_heads[b]; f != 0;
             f = reinterpret_cast<const free_block*>(base_ + f)->next) {
            const std::uint64_t end = f + reinterpret_cast<const free_block*>(base_ + f)->bytes;
            if (class_of(end - f) != b || end > h_->top)
                throw wrong("free block at " + std::to_string(f) + " is misplaced");
            const auto after =
                std::lower_bound(blocks.begin(), blocks.end(), std::make_pair(f, std::uint64_t{0}));
            if ((after != blocks.end() && after->first < end) ||
                (after != blocks.begin() && std::prev(after)->second > f))
                throw wrong("free block at " + std::to_string(f) + " overlaps an entry");
        }
    }
}

void shared_memory_map::while_locked(const std::function<void()>& f) {
    lock held{*this};
    f();
}

}  // namespace plugd
