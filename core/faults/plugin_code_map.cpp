// plugin_code_map: the table (seqlocked slots) and the range of a library from the loader.
#include "faults/plugin_code_map.hpp"

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <mutex>

namespace plugd {
namespace {

// Enough for every version a busy server has loaded plus the last unloaded ones: a
// reload keeps at most one draining version per instance.
constexpr int slot_count = 256;

struct slot {
    // Odd while a writer changes the slot; a reader that sees it change retries.
    std::atomic<std::uint64_t> sequence{0};
    std::atomic<std::uintptr_t> begin{0};
    std::atomic<std::uintptr_t> end{0};  ///< 0: unused
    std::atomic<std::uint64_t> generation{0};
    std::atomic<std::uint64_t> unloaded_at{0};  ///< 0: loaded; else the unload's order
    char plugin[64] = {};
};

slot slots[slot_count];
std::mutex writers;
std::uint64_t unloads = 0;  ///< guarded by `writers`

void copy_name(char* to, std::size_t n, const char* from) noexcept {
    std::size_t i = 0;
    for (; from && from[i] && i + 1 < n; ++i) to[i] = from[i];
    to[i] = '\0';
}

// A consistent copy of slot `s`; false if unused or changing under us.
bool read_slot(const slot& s, std::uintptr_t& begin, std::uintptr_t& end,
               plugin_code_owner& out) noexcept {
    for (int attempt = 0; attempt < 4; ++attempt) {
        const std::uint64_t before = s.sequence.load(std::memory_order_acquire);
        if (before & 1) continue;
        begin = s.begin.load(std::memory_order_relaxed);
        end = s.end.load(std::memory_order_relaxed);
        out.generation = s.generation.load(std::memory_order_relaxed);
        out.unloaded = s.unloaded_at.load(std::memory_order_relaxed) != 0;
        copy_name(out.plugin, sizeof out.plugin, s.plugin);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.sequence.load(std::memory_order_relaxed) == before) return end != 0;
    }
    return false;
}

}  // namespace

int note_plugin_loaded(const char* plugin, std::uint64_t generation, std::uintptr_t begin,
                       std::uintptr_t end) noexcept {
    std::lock_guard lock{writers};
    int chosen = -1;
    std::uint64_t oldest = 0;
    for (int i = 0; i < slot_count; ++i) {
        const slot& s = slots[i];
        if (s.end.load(std::memory_order_relaxed) == 0) {
            chosen = i;
            break;
        }
        const std::uint64_t at = s.unloaded_at.load(std::memory_order_relaxed);
        if (at != 0 && (chosen < 0 || at < oldest)) {
            chosen = i;
            oldest = at;
        }
    }
    if (chosen < 0) return -1;
    slot& s = slots[chosen];
    s.sequence.fetch_add(1, std::memory_order_acq_rel);
    std::atomic_thread_fence(std::memory_order_release);
    s.begin.store(begin, std::memory_order_relaxed);
    s.end.store(end, std::memory_order_relaxed);
    s.generation.store(generation, std::memory_order_relaxed);
    s.unloaded_at.store(0, std::memory_order_relaxed);
    copy_name(s.plugin, sizeof s.plugin, plugin);
    s.sequence.fetch_add(1, std::memory_order_release);
    return chosen;
}

void note_plugin_unloaded(int index) noexcept {
    if (index < 0 || index >= slot_count) return;
    std::lock_guard lock{writers};
    slots[index].unloaded_at.store(++unloads, std::memory_order_relaxed);
}

bool plugin_code_at(std::uintptr_t address, plugin_code_owner& out) noexcept {
    bool found = false;
    std::uint64_t latest = 0;
    for (const slot& s : slots) {
        std::uintptr_t begin = 0, end = 0;
        plugin_code_owner candidate;
        if (!read_slot(s, begin, end, candidate) || address < begin || address >= end) continue;
        // Where a version is loaded now wins over where an unloaded one was: the range may
        // have been reused.
        if (!candidate.unloaded) {
            out = candidate;
            return true;
        }
        const std::uint64_t at = s.unloaded_at.load(std::memory_order_relaxed);
        if (!found || at > latest) {
            out = candidate;
            latest = at;
            found = true;
        }
    }
    return found;
}

bool library_range(void* dlopen_handle, std::uintptr_t& begin, std::uintptr_t& end) noexcept {
    link_map* map = nullptr;
    if (!dlopen_handle || ::dlinfo(dlopen_handle, RTLD_DI_LINKMAP, &map) != 0 || !map) return false;
    struct search {
        ElfW(Addr) base;
        std::uintptr_t begin = 0, end = 0;
    } found{map->l_addr};
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto& f = *static_cast<search*>(data);
            if (info->dlpi_addr != f.base) return 0;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_LOAD) continue;
                const std::uintptr_t from = info->dlpi_addr + ph.p_vaddr;
                const std::uintptr_t to = from + ph.p_memsz;
                if (f.end == 0 || from < f.begin) f.begin = from;
                if (to > f.end) f.end = to;
            }
            return 1;
        },
        &found);
    begin = found.begin;
    end = found.end;
    return end > begin;
}

}  // namespace plugd
