// state_snapshot: "plugd-shared-state 1\n", then per entry "<key bytes> <value bytes>
// <expiry ms since the epoch, or -1>\n<key><value>".
#include "host/state_snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "host/shared_map_rules.hpp"

namespace plugd {
namespace {

constexpr std::string_view snapshot_magic = "plugd-shared-state 1\n";

}  // namespace

snapshot_writer::snapshot_writer(std::filesystem::path file)
    : file_{std::move(file)}, temporary_{file_.string() + ".tmp"} {
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                 0600);  // the values are the plugin's, maybe secrets
    if (fd_ < 0) {
        throw std::runtime_error("cannot create " + temporary_ + ": " + std::strerror(errno));
    }
    chunk_ = snapshot_magic;
}

snapshot_writer::~snapshot_writer() {
    if (fd_ >= 0) ::close(fd_);
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

void snapshot_writer::flush() {
    std::size_t done = 0;
    while (write_error_ == 0 && done < chunk_.size()) {
        const ssize_t n = ::write(fd_, chunk_.data() + done, chunk_.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) write_error_ = errno;
        done += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    chunk_.clear();
}

void snapshot_writer::add(std::string_view key, std::string_view value,
                          snapshot_clock::time_point expires) {
    const long long expires_ms =
        expires == snapshot_clock::time_point::max()
            ? -1
            : std::chrono::duration_cast<std::chrono::milliseconds>(expires.time_since_epoch())
                  .count();
    // Lengths first: keys and values are bytes, newlines and NULs included.
    chunk_ += std::to_string(key.size()) + ' ' + std::to_string(value.size()) + ' ' +
              std::to_string(expires_ms) + '\n';
    chunk_ += key;
    chunk_ += value;
    if (chunk_.size() >= (std::size_t{1} << 16)) flush();
}

void snapshot_writer::commit() {
    flush();
    const auto fail = [&](const std::string& what, int error) {
        return std::runtime_error(what + ": " + std::strerror(error));
    };
    if (write_error_ != 0) throw fail("cannot write " + temporary_, write_error_);
    if (::fsync(fd_) != 0) throw fail("cannot write " + temporary_ + " to the disk (fsync)", errno);
    const int closed = ::close(std::exchange(fd_, -1));
    if (closed != 0) throw fail("cannot write " + temporary_ + " (close)", errno);
    if (::rename(temporary_.c_str(), file_.c_str()) != 0) {
        throw fail("cannot rename " + temporary_ + " to " + file_.string(), errno);
    }
    temporary_.clear();  // renamed: nothing left to remove
    // The rename itself reaches the disk with the folder.
    const auto folder =
        file_.parent_path().empty() ? std::filesystem::path{"."} : file_.parent_path();
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

void read_snapshot(const std::filesystem::path& file, const std::string& owner, std::size_t budget,
                   const std::function<void(std::string& key, std::string& value,
                                            snapshot_clock::time_point expires)>& put) {
    using clock = snapshot_clock;
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
        const std::size_t cost = shared_map_rules::cost(key_size, value_size);
        if (cost > budget) {
            throw std::runtime_error(
                file.string() + ": entry " + std::to_string(entry_index + 1) + " (at byte " +
                std::to_string(header_at) + ") needs " + std::to_string(cost) +
                " bytes, more than the " + std::to_string(budget) + " bytes of /plugins/" + owner +
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
        try {
            put(key, value, expires);
        } catch (const std::length_error&) {
            throw std::runtime_error(file.string() + ": entry " + std::to_string(entry_index) +
                                     " (at byte " + std::to_string(header_at) +
                                     ") does not fit: the entries before it fill the " +
                                     std::to_string(budget) + " bytes of /plugins/" + owner +
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

}  // namespace plugd
