// state_snapshot: the state_file format of ctx.shared(), written atomically and read back
// without trusting a length before it is checked. Both maps (in-process, shared memory)
// save and load through it, so a file one wrote the other reads.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace plugd {

/// Persisted expiry times are wall-clock times: a time to live means the same after a
/// restart or a reboot. time_point::max() is "no time to live".
using snapshot_clock = std::chrono::system_clock;

/// Writes a snapshot to a temporary file in the same folder; commit() flushes it to the disk
/// and renames it over `file`, so a crash or a full disk mid-save leaves the previous file.
/// Destroyed without commit(), it removes the temporary file.
class snapshot_writer {
  public:
    /// Throws std::runtime_error naming the temporary file when it cannot be created.
    explicit snapshot_writer(std::filesystem::path file);
    ~snapshot_writer();
    snapshot_writer(const snapshot_writer&) = delete;
    snapshot_writer& operator=(const snapshot_writer&) = delete;

    /// One live entry. Buffers; writes in 64 KiB chunks (an error shows at commit()).
    void add(std::string_view key, std::string_view value, snapshot_clock::time_point expires);
    /// Throws std::runtime_error naming the file and the reason; the previous file is then
    /// untouched.
    void commit();

  private:
    void flush();
    std::filesystem::path file_;
    std::string temporary_;
    int fd_ = -1;
    std::string chunk_;
    int write_error_ = 0;  ///< errno of the first failed write
};

/// Reads what snapshot_writer wrote, calling `put` for each entry whose time to live has
/// not passed. A missing file is an empty snapshot; a path that is not a regular file (a
/// FIFO) is refused without being opened. No length in the file is trusted before it is
/// checked against the bytes left and `budget` (the instance's shared_bytes). A
/// std::length_error from `put` (the budget is full) becomes a message naming the entry.
/// Throws std::runtime_error naming the file, the entry and its offset.
void read_snapshot(const std::filesystem::path& file, const std::string& owner, std::size_t budget,
                   const std::function<void(std::string& key, std::string& value,
                                            snapshot_clock::time_point expires)>& put);

/// Throws std::runtime_error (naming /plugins/`instance`/state_file) unless `file` could be
/// saved: it must be a regular file or not exist, and plugd must be able to create a file
/// in its folder (tried, so it holds for root and read-only mounts too). Called at start,
/// `-t`, each reload and after switching to `"user"`.
void check_state_file(const std::filesystem::path& file, const std::string& instance);

}  // namespace plugd
