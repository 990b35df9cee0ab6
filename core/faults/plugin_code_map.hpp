// plugin_code_map: where each loaded plugin version's code is mapped, and where recently
// unloaded ones were, so a crash report can name the plugin whose code a faulting thread
// was in even when no request of it ran there (a thread or callback the plugin started
// itself, left running after a reload unloaded it).
//
// A fixed table: the crash handler reads it without allocating or locking (each slot is a
// seqlock); recording takes a mutex and runs where versions load and unload.
#pragma once

#include <cstdint>

namespace plugd {

/// What a lookup found: the version whose code covers an address.
struct plugin_code_owner {
    char plugin[64] = {};          ///< instance name
    std::uint64_t generation = 0;  ///< of the version
    bool unloaded = false;         ///< true: it was mapped there, and has been unloaded
};

/// Records that version `generation` of instance `plugin` is mapped at [begin, end).
/// Returns the slot to pass to note_plugin_unloaded, or -1 when the table is full of
/// loaded versions (the report then cannot name it). Not async-signal-safe.
int note_plugin_loaded(const char* plugin, std::uint64_t generation, std::uintptr_t begin,
                       std::uintptr_t end) noexcept;
/// The version recorded in `slot` was unloaded: its range is kept (the oldest unloaded
/// ones give way to new loads) so a stray thread that jumps there is still named.
void note_plugin_unloaded(int slot) noexcept;

/// The version whose code covers `address` (a loaded one first, else the most recently
/// unloaded one); false if none. Async-signal-safe.
bool plugin_code_at(std::uintptr_t address, plugin_code_owner& out) noexcept;

/// The range a loaded library occupies, from its dlopen handle: the lowest to the highest
/// address of its PT_LOAD segments. False if the loader does not know the handle.
bool library_range(void* dlopen_handle, std::uintptr_t& begin, std::uintptr_t& end) noexcept;

}  // namespace plugd
