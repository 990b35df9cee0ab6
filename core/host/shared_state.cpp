// shared_state: striped maps with a byte budget, time to live and a snapshot file.
#include "host/shared_state.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <stdexcept>

#include "host/shared_map_rules.hpp"
#include "host/shared_memory_map.hpp"
#include "log.hpp"

namespace plugd {

using shared_map_rules::cost;

shared_map_impl::shared_map_impl(std::string owner, std::size_t byte_budget)
    : owner_{std::move(owner)}, budget_{byte_budget} {}

shared_map_impl::stripe& shared_map_impl::stripe_of(std::string_view key) const noexcept {
    return stripes_[hash{}(key) % stripes_.size()];
}

void shared_map_impl::reserve(std::size_t bytes) const {
    std::size_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
        const std::size_t budget = budget_.load(std::memory_order_relaxed);
        if (used > budget || budget - used < bytes)
            throw shared_map_rules::full(owner_, used, budget);
        if (used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed)) return;
    }
}

void shared_map_impl::release(std::size_t bytes) const noexcept {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
}

std::optional<std::string> shared_map_impl::get(std::string_view key) const {
    auto& s = stripe_of(key);
    std::lock_guard lock{s.mutex};
    const auto it = s.entries.find(key);
    if (it == s.entries.end()) return std::nullopt;
    if (it->second.expires <= clock::now()) {
        release(cost(it->first.size(), it->second.value.size()));
        s.entries.erase(it);
        return std::nullopt;
    }
    return it->second.value;
}

std::size_t shared_map_impl::purge(stripe& s, clock::time_point now) noexcept {
    std::size_t freed = 0;
    for (auto it = s.entries.begin(); it != s.entries.end();) {
        if (it->second.expires > now) {
            ++it;
            continue;
        }
        freed += cost(it->first.size(), it->second.value.size());
        it = s.entries.erase(it);
    }
    release(freed);
    return freed;
}

void shared_map_impl::purge_expired() {
    const auto now = clock::now();
    for (auto& s : stripes_) {
        std::lock_guard lock{s.mutex};
        purge(s, now);
    }
}

void shared_map_impl::put(stripe& s, std::string_view key, std::string value,
                          clock::time_point expires) {
    const auto it = s.entries.find(key);
    const std::size_t before =
        it == s.entries.end() ? 0 : cost(key.size(), it->second.value.size());
    const std::size_t after = cost(key.size(), value.size());
    if (after > before) {
        try {
            reserve(after - before);
        } catch (const std::length_error&) {
            // Full: entries whose time to live has passed make room first: this stripe's
            // (its lock is held) and every other stripe's that is free right now (try_lock:
            // waiting for one while holding ours could deadlock with a thread doing the
            // same the other way round; the periodic sweep gets the rest).
            const auto now = clock::now();
            std::size_t freed = purge(s, now);
            for (auto& other : stripes_) {
                if (&other == &s || !other.mutex.try_lock()) continue;
                freed += purge(other, now);
                other.mutex.unlock();
            }
            if (freed == 0) throw;
            return put(s, key, std::move(value), expires);
        }
    }
    try {
        if (it == s.entries.end()) {
            s.entries.emplace(std::string{key}, entry{std::move(value), expires});
        } else {
            it->second = entry{std::move(value), expires};
        }
    } catch (...) {
        if (after > before) release(after - before);
        throw;
    }
    if (before > after) release(before - after);
}

void shared_map_impl::set(std::string_view key, std::string_view value,
                          std::chrono::milliseconds ttl) {
    const auto expires = ttl.count() > 0 ? clock::now() + ttl : clock::time_point::max();
    auto& s = stripe_of(key);
    std::lock_guard lock{s.mutex};
    put(s, key, std::string{value}, expires);
}

bool shared_map_impl::erase(std::string_view key) {
    auto& s = stripe_of(key);
    std::lock_guard lock{s.mutex};
    const auto it = s.entries.find(key);
    if (it == s.entries.end()) return false;
    const bool live = it->second.expires > clock::now();
    release(cost(it->first.size(), it->second.value.size()));
    s.entries.erase(it);
    return live;
}

std::int64_t shared_map_impl::increment(std::string_view key, std::int64_t delta) {
    auto& s = stripe_of(key);
    std::lock_guard lock{s.mutex};
    std::int64_t current = 0;
    auto expires = clock::time_point::max();
    const auto it = s.entries.find(key);
    if (it != s.entries.end() && it->second.expires > clock::now()) {
        const auto n = shared_map_rules::parse_integer(it->second.value);
        if (!n) throw shared_map_rules::not_an_integer(owner_);
        current = *n;
        expires = it->second.expires;
    }
    std::int64_t next = 0;
    if (__builtin_add_overflow(current, delta, &next))
        throw shared_map_rules::would_overflow(owner_);
    put(s, key, std::to_string(next), expires);
    return next;
}

std::size_t shared_map_impl::size() const {
    const auto now = clock::now();
    std::size_t live = 0;
    for (auto& s : stripes_) {
        std::lock_guard lock{s.mutex};
        for (const auto& [key, e] : s.entries) live += e.expires > now ? 1 : 0;
    }
    return live;
}

void shared_map_impl::save(const std::filesystem::path& file) const {
    snapshot_writer out{file};
    const auto now = clock::now();
    for (auto& s : stripes_) {
        std::lock_guard lock{s.mutex};
        for (const auto& [key, e] : s.entries) {
            if (e.expires > now) out.add(key, e.value, e.expires);
        }
    }
    out.commit();
}

void shared_map_impl::load(const std::filesystem::path& file) {
    read_snapshot(file, owner_, budget_.load(std::memory_order_relaxed),
                  [&](std::string& key, std::string& value, clock::time_point expires) {
                      auto& s = stripe_of(key);
                      std::lock_guard lock{s.mutex};
                      put(s, key, std::move(value), expires);
                  });
}

std::shared_ptr<instance_map> shared_state::make_map(const std::string& name,
                                                     std::size_t byte_budget,
                                                     std::size_t& capacity) const {
    switch (where_) {
        case placement::in_process:
            return std::make_shared<shared_map_impl>(name, byte_budget);
        case placement::segments_made_here: {
            std::shared_ptr<shared_memory_map> map =
                shared_memory_map::create(shared_memory_map::segment_name(::getpid(), name), name,
                                          byte_budget, segment_owner_);
            capacity = map->capacity();
            return map;
        }
        case placement::segments_of_master: {
            std::shared_ptr<shared_memory_map> map =
                shared_memory_map::open(shared_memory_map::segment_name(master_, name), name);
            map->set_budget(byte_budget);
            capacity = map->capacity();
            return map;
        }
    }
    return nullptr;  // unreachable: every placement is handled above
}

std::shared_ptr<instance_map> shared_state::map_for(const std::string& name,
                                                    std::size_t byte_budget,
                                                    const std::filesystem::path& state_file) {
    auto& slot = maps_[name];
    if (slot.map) {
        // A reload: settings change at its commit (configure). A segment's layout is made
        // at start for its shared_bytes then: a budget beyond it needs a new segment.
        if (slot.capacity != 0 && byte_budget > slot.capacity) {
            throw std::runtime_error(
                "/plugins/" + name + "/shared_bytes: " + std::to_string(byte_budget) +
                " bytes is more than the " + std::to_string(slot.capacity) +
                " bytes the workers' shared memory was made for at start; restart plugd to "
                "raise it (a reload may lower it, or raise it back up to that)");
        }
        return slot.map;
    }
    try {
        slot.map = make_map(name, byte_budget, slot.capacity);
        if (!state_file.empty() && where_ != placement::segments_of_master)
            slot.map->load(state_file);
    } catch (...) {
        maps_.erase(name);
        throw;
    }
    slot.state_file = state_file;
    return slot.map;
}

void shared_state::configure(const std::string& name, std::size_t byte_budget,
                             const std::filesystem::path& state_file) {
    auto it = maps_.find(name);
    if (it == maps_.end()) return;
    it->second.map->set_budget(byte_budget);
    it->second.state_file = state_file;
}

void shared_state::purge_expired() {
    for (auto& [name, slot] : maps_) slot.map->purge_expired();
}

void shared_state::keep_only(const std::set<std::string>& names) {
    std::erase_if(maps_, [&](const auto& m) { return !names.contains(m.first); });
}

void shared_state::remove_master_segments() const {
    if (where_ != placement::segments_of_master) return;
    for (const auto& [name, slot] : maps_)
        ::shm_unlink(shared_memory_map::segment_name(master_, name).c_str());
}

bool shared_state::save_all() const {
    if (where_ == placement::segments_of_master) return true;  // the master saves
    bool saved = true;
    for (const auto& [name, slot] : maps_) {
        if (slot.state_file.empty()) continue;
        try {
            slot.map->save(slot.state_file);
            log::info("plugin " + name + ": shared state saved to " + slot.state_file.string() +
                      " (" + std::to_string(slot.map->size()) + " entries)");
        } catch (const std::exception& e) {
            log::error("plugin " + name + ": shared state NOT saved to " +
                           slot.state_file.string() + ": " + e.what() +
                           "; what the instance held is lost (plugd exits with status 1)",
                       {log::tag("plugin", name)});
            saved = false;
        }
    }
    return saved;
}

}  // namespace plugd
