// shared_state: striped maps with a byte budget, time to live and a snapshot file.
#include "host/shared_state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
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
    // Written whole to a temporary file in the same folder, flushed to the disk, then
    // renamed over the old one: a crash or a full disk mid-save leaves the previous file.
    const std::string temporary = file.string() + ".tmp";
    const auto fail = [&](const std::string& what) {
        const int error = errno;
        ::unlink(temporary.c_str());
        return std::runtime_error(what + ": " + std::strerror(error));
    };
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                          0600);  // the values are the plugin's, maybe secrets
    if (fd < 0) throw fail("cannot create " + temporary);
    std::string chunk{snapshot_magic};
    bool written = true;
    const auto flush = [&] {
        std::size_t done = 0;
        while (written && done < chunk.size()) {
            const ssize_t n = ::write(fd, chunk.data() + done, chunk.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) written = false;
            done += n > 0 ? static_cast<std::size_t>(n) : 0;
        }
        chunk.clear();
    };
    const auto now = clock::now();
    for (auto& s : stripes_) {
        std::lock_guard lock{s.mutex};
        for (const auto& [key, e] : s.entries) {
            if (e.expires <= now) continue;
            // Wall-clock time (system_clock), so a time to live means the same after a
            // reboot; -1 for none.
            const long long expires_ms =
                e.expires == clock::time_point::max()
                    ? -1
                    : std::chrono::duration_cast<std::chrono::milliseconds>(
                          e.expires.time_since_epoch())
                          .count();
            // Lengths first: keys and values are bytes, newlines and NULs included.
            chunk += std::to_string(key.size()) + ' ' + std::to_string(e.value.size()) + ' ' +
                     std::to_string(expires_ms) + '\n';
            chunk += key;
            chunk += e.value;
            if (chunk.size() >= (std::size_t{1} << 16)) flush();
        }
    }
    flush();
    if (!written) {
        const auto error = fail("cannot write " + temporary);
        ::close(fd);
        throw error;
    }
    if (::fsync(fd) != 0) {
        const auto error = fail("cannot write " + temporary + " to the disk (fsync)");
        ::close(fd);
        throw error;
    }
    if (::close(fd) != 0) throw fail("cannot write " + temporary + " (close)");
    if (::rename(temporary.c_str(), file.c_str()) != 0) {
        throw fail("cannot rename " + temporary + " to " + file.string());
    }
    // The rename itself reaches the disk with the folder.
    const auto folder =
        file.parent_path().empty() ? std::filesystem::path{"."} : file.parent_path();
    if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
}

namespace {

// Reads a state file through a small buffer, knowing how many bytes are left, so that no
// length the file claims is trusted before the bytes are there.
class snapshot_reader {
  public:
    snapshot_reader(int fd, std::uint64_t size) : fd_{fd}, left_{size} {}
    std::uint64_t offset() const noexcept { return offset_; }
    /// Bytes of the file not read yet.
    std::uint64_t remaining() const noexcept { return left_ + (end_ - begin_); }
    bool at_end() { return !fill() && begin_ == end_; }

    /// Up to and without the next '\n' within `limit` bytes; false if there is none.
    bool line(std::string& out, std::size_t limit) {
        out.clear();
        while (out.size() <= limit) {
            if (begin_ == end_ && !fill()) return false;
            const char c = buffer_[begin_++];
            ++offset_;
            if (c == '\n') return true;
            out += c;
        }
        return false;
    }
    /// Exactly `n` bytes (the caller has checked remaining()).
    bool bytes(std::string& out, std::size_t n) {
        out.clear();
        out.reserve(n);
        while (out.size() < n) {
            if (begin_ == end_ && !fill()) return false;
            const std::size_t take = std::min(n - out.size(), end_ - begin_);
            out.append(buffer_.data() + begin_, take);
            begin_ += take;
            offset_ += take;
        }
        return true;
    }

  private:
    bool fill() {
        if (begin_ != end_) return true;
        begin_ = end_ = 0;
        while (left_ > 0) {
            const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                left_ = 0;  // shorter than it was: what is missing is reported as cut short
                return false;
            }
            end_ = static_cast<std::size_t>(n);
            left_ -= std::min<std::uint64_t>(left_, end_);
            return true;
        }
        return false;
    }

    int fd_;
    std::uint64_t left_;
    std::uint64_t offset_ = 0;
    std::array<char, 1 << 16> buffer_{};
    std::size_t begin_ = 0, end_ = 0;
};

// "a FIFO", "a directory", ...: what a path that is not a regular file is.
std::string describe_file_type(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

std::runtime_error not_regular(const std::filesystem::path& file, mode_t mode) {
    return std::runtime_error(file.string() + " is " + describe_file_type(mode) +
                              ", not a regular file; a state file is written by plugd and read "
                              "back: point state_file at a regular file or at a name that does "
                              "not exist yet");
}

}  // namespace

void shared_map_impl::load(const std::filesystem::path& file) {
    // Looked at before it is opened: opening a FIFO for reading waits for a writer, which
    // would hang start-up; a device or directory is no snapshot either.
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        if (errno == ENOENT) return;  // nothing saved yet
        throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) throw not_regular(file, st.st_mode);
    // O_NONBLOCK: should it have been swapped for a FIFO since, the open still returns.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_at_end{fd};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw not_regular(file, st.st_mode);

    snapshot_reader in{fd, static_cast<std::uint64_t>(st.st_size)};
    std::size_t entry_index = 0;
    std::uint64_t header_at = 0;  // where the entry being read starts
    const auto corrupt = [&](const std::string& what) {
        return std::runtime_error(file.string() + ": " + what + " (entry " +
                                  std::to_string(entry_index + 1) + ", at byte " +
                                  std::to_string(header_at) +
                                  "); it is not a plugd state file, or was cut short: move it "
                                  "away to start with an empty state");
    };
    std::string line;
    if (!in.line(line, snapshot_magic.size()) || line + '\n' != snapshot_magic) {
        throw std::runtime_error(file.string() +
                                 ": no \"plugd-shared-state 1\" header; it is not a plugd state "
                                 "file: move it away to start with an empty state");
    }
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    const long long now_ms = duration_cast<milliseconds>(clock::now().time_since_epoch()).count();
    const long long max_ms =
        duration_cast<milliseconds>(clock::time_point::max().time_since_epoch()).count();
    const std::size_t budget = budget_.load(std::memory_order_relaxed);
    std::string key, value;
    while (!in.at_end()) {
        header_at = in.offset();
        // "<key bytes> <value bytes> <expiry ms or -1>\n": 20 digits each at most.
        if (!in.line(line, 64)) throw corrupt("a malformed entry header");
        std::uint64_t key_size = 0, value_size = 0;
        long long expires_ms = 0;
        const char* p = line.data();
        const char* const end = line.data() + line.size();
        const auto number = [&](auto& n, bool last) {
            const auto [next, ec] = std::from_chars(p, end, n);
            if (ec != std::errc{} || next == p ||
                (last ? next != end : next == end || *next != ' '))
                return false;
            p = last ? next : next + 1;
            return true;
        };
        if (!number(key_size, false) || !number(value_size, false) || !number(expires_ms, true) ||
            expires_ms < -1) {
            throw corrupt("a malformed entry header");
        }
        // Every length is checked before anything is allocated for it: against what is
        // left of the file, then against the instance's budget.
        if (key_size > in.remaining() || value_size > in.remaining() - key_size) {
            throw corrupt("an entry of " + std::to_string(key_size) + " + " +
                          std::to_string(value_size) + " bytes where " +
                          std::to_string(in.remaining()) + " bytes are left");
        }
        if (cost(key_size, value_size) > budget) {
            throw std::runtime_error(
                file.string() + ": entry " + std::to_string(entry_index + 1) + " (at byte " +
                std::to_string(header_at) + ") needs " +
                std::to_string(cost(key_size, value_size)) + " bytes, more than the " +
                std::to_string(budget) + " bytes of /plugins/" + owner_ +
                "/shared_bytes: raise shared_bytes, or move the file away to start with an "
                "empty state");
        }
        if (!in.bytes(key, key_size) || !in.bytes(value, value_size)) {
            throw corrupt("an entry cut short");
        }
        ++entry_index;
        // Compared in milliseconds: a far-future expiry must not overflow the clock's units.
        if (expires_ms >= 0 && expires_ms <= now_ms) continue;  // passed while plugd was stopped
        const auto expires = expires_ms < 0 || expires_ms >= max_ms
                                 ? clock::time_point::max()
                                 : clock::time_point{std::chrono::milliseconds{expires_ms}};
        auto& s = stripe_of(key);
        std::lock_guard lock{s.mutex};
        try {
            put(s, key, std::move(value), expires);
        } catch (const std::length_error&) {
            throw std::runtime_error(file.string() + ": entry " + std::to_string(entry_index) +
                                     " (at byte " + std::to_string(header_at) +
                                     ") does not fit: the entries before it fill the " +
                                     std::to_string(budget) + " bytes of /plugins/" + owner_ +
                                     "/shared_bytes; raise shared_bytes, or move the file away "
                                     "to start with an empty state");
        }
    }
}

void check_state_file(const std::filesystem::path& file, const std::string& instance) {
    const std::string where = "/plugins/" + instance + "/state_file: ";
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
        throw std::runtime_error(where + not_regular(file, st.st_mode).what());
    }
    // Whether a file can be created there, tried rather than deduced from permission bits:
    // root ignores them, a read-only mount or an immutable folder does not.
    const auto folder =
        file.parent_path().empty() ? std::filesystem::path{"."} : file.parent_path();
    std::string probe = file.string() + ".probe-XXXXXX";
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) {
        throw std::runtime_error(where + "plugd cannot create files in " + folder.string() + " (" +
                                 std::strerror(errno) +
                                 "), so the state could not be saved at stop; make the folder "
                                 "writable for plugd's user, or choose another state_file");
    }
    ::close(fd);
    ::unlink(probe.c_str());
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

bool shared_state::save_all() const {
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
