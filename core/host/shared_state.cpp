// shared_state: striped maps with a byte budget, time to live and a snapshot file.
#include "host/shared_state.hpp"

#include <charconv>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "log.hpp"

namespace plugd {
namespace {

// What an entry costs besides its bytes: the node, the hash bucket, the strings' headers.
constexpr std::size_t entry_overhead = 64;

std::size_t cost(std::size_t key, std::size_t value) noexcept {
    return key + value + entry_overhead;
}

constexpr std::string_view snapshot_magic = "plugd-shared-state 1\n";

}  // namespace

shared_map_impl::shared_map_impl(std::string owner, std::size_t byte_budget)
    : owner_{std::move(owner)}, budget_{byte_budget} {}

shared_map_impl::stripe& shared_map_impl::stripe_of(std::string_view key) const noexcept {
    return stripes_[hash{}(key) % stripes_.size()];
}

void shared_map_impl::reserve(std::size_t bytes) const {
    std::size_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
        const std::size_t budget = budget_.load(std::memory_order_relaxed);
        if (used > budget || budget - used < bytes) {
            throw std::length_error("shared state of plugin instance \"" + owner_ + "\" is full (" +
                                    std::to_string(used) + " of " + std::to_string(budget) +
                                    " bytes in use): raise /plugins/" + owner_ +
                                    "/shared_bytes, or erase entries or give them a ttl");
        }
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
        const auto& text = it->second.value;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), current);
        if (ec != std::errc{} || end != text.data() + text.size()) {
            throw std::invalid_argument("shared state of plugin instance \"" + owner_ +
                                        "\": the value at this key is not a decimal integer");
        }
        expires = it->second.expires;
    }
    std::int64_t next = 0;
    if (__builtin_add_overflow(current, delta, &next)) {
        throw std::invalid_argument("shared state of plugin instance \"" + owner_ +
                                    "\": incrementing would overflow a 64-bit integer");
    }
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
    const auto temporary = file.string() + ".tmp";
    {
        std::ofstream out{temporary, std::ios::binary | std::ios::trunc};
        out << snapshot_magic;
        const auto now = clock::now();
        for (auto& s : stripes_) {
            std::lock_guard lock{s.mutex};
            for (const auto& [key, e] : s.entries) {
                if (e.expires <= now) continue;
                const long long expires_ms =
                    e.expires == clock::time_point::max()
                        ? -1
                        : std::chrono::duration_cast<std::chrono::milliseconds>(
                              e.expires.time_since_epoch())
                              .count();
                // Lengths first: keys and values are bytes, newlines and NULs included.
                out << key.size() << ' ' << e.value.size() << ' ' << expires_ms << '\n'
                    << key << e.value;
            }
        }
        if (!out.flush()) {
            throw std::runtime_error("cannot write " + temporary + ": " + std::strerror(errno));
        }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, file, ec);
    if (ec) throw std::runtime_error("cannot replace " + file.string() + ": " + ec.message());
}

void shared_map_impl::load(const std::filesystem::path& file) {
    std::ifstream in{file, std::ios::binary};
    if (!in) return;  // nothing saved yet
    const auto corrupt = [&](const std::string& what) {
        return std::runtime_error(file.string() + ": " + what +
                                  "; it is not a plugd state file, or was cut short: move it "
                                  "away to start with an empty state");
    };
    std::string magic(snapshot_magic.size(), '\0');
    if (!in.read(magic.data(), static_cast<std::streamsize>(magic.size())) ||
        magic != snapshot_magic) {
        throw corrupt("no \"plugd-shared-state 1\" header");
    }
    const auto now = clock::now();
    std::size_t key_size = 0, value_size = 0;
    long long expires_ms = 0;
    while (in >> key_size >> value_size >> expires_ms) {
        if (in.get() != '\n') throw corrupt("a malformed entry header");
        std::string key(key_size, '\0'), value(value_size, '\0');
        if (!in.read(key.data(), static_cast<std::streamsize>(key_size)) ||
            !in.read(value.data(), static_cast<std::streamsize>(value_size))) {
            throw corrupt("an entry cut short");
        }
        const auto expires = expires_ms < 0
                                 ? clock::time_point::max()
                                 : clock::time_point{std::chrono::milliseconds{expires_ms}};
        if (expires <= now) continue;
        auto& s = stripe_of(key);
        std::lock_guard lock{s.mutex};
        put(s, key, std::move(value), expires);
    }
    if (!in.eof()) throw corrupt("a malformed entry header");
}

std::shared_ptr<shared_map_impl> shared_state::map_for(const std::string& name,
                                                       std::size_t byte_budget,
                                                       const std::filesystem::path& state_file) {
    auto& slot = maps_[name];
    if (slot.map) return slot.map;  // a reload: settings change at its commit (configure)
    auto map = std::make_shared<shared_map_impl>(name, byte_budget);
    if (!state_file.empty()) map->load(state_file);
    slot = {map, state_file};
    return map;
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

void shared_state::save_all() const {
    for (const auto& [name, slot] : maps_) {
        if (slot.state_file.empty()) continue;
        try {
            slot.map->save(slot.state_file);
            log::info("plugin " + name + ": shared state saved to " + slot.state_file.string() +
                      " (" + std::to_string(slot.map->size()) + " entries)");
        } catch (const std::exception& e) {
            log::error("plugin " + name + ": shared state not saved: " + e.what());
        }
    }
}

}  // namespace plugd
