// buffer_pool: a shard's spare request buffers and reply strings.
//
// A connection holds a request buffer only while it holds bytes of a request, and a reply
// string with heap storage only while it answers; both come back here when the connection
// waits for its next request. So an idle connection holds neither (ten thousand idle
// keep-alive clients cost no buffers), and in steady state a request allocates neither.
// Touched only by the shard's own thread: no lock.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace plugd {

class buffer_pool {
  public:
    /// Heap bytes owned by whoever took them from the pool; `size` is a power of two.
    struct block {
        char* data = nullptr;
        std::size_t size = 0;
    };

    buffer_pool() = default;
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;
    ~buffer_pool();

    /// A block of at least `size` bytes (at least smallest_block). Throws std::bad_alloc.
    block take(std::size_t size);
    /// Back to the pool, or freed when the pool keeps enough of its size already.
    void give(block b) noexcept;

    /// A string with spare capacity, if one was given back; otherwise an empty one (whose
    /// small-string storage is enough for most replies).
    std::string take_string() noexcept;
    /// Keeps `s`'s heap storage for the next reply; a string without any is dropped.
    void give_string(std::string&& s) noexcept;

    static constexpr std::size_t smallest_block = 64;

  private:
    static constexpr std::size_t classes = 40;  // 64 B · 2^k, far past any request limit
    /// Spare memory kept per size class (at least a few blocks of the largest ones): enough
    /// to serve bursts without malloc, not so much that a past burst stays resident.
    static constexpr std::size_t kept_bytes_per_class = 256 * 1024;
    static constexpr std::size_t kept_strings = 256;
    static constexpr std::size_t kept_string_capacity = 64 * 1024;

    std::array<std::vector<char*>, classes> free_;
    std::vector<std::string> strings_;
};

/// The bytes of requests received and not handled yet: a window [begin, end) of a pooled
/// block, which it holds only while the window is not empty (see release_if_empty).
class request_bytes {
  public:
    request_bytes() = default;
    request_bytes(const request_bytes&) = delete;
    request_bytes& operator=(const request_bytes&) = delete;

    std::string_view view() const noexcept { return {block_.data + begin_, end_ - begin_}; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }

    /// Appends `n` bytes, moving or growing the window as needed. Throws std::bad_alloc.
    void append(buffer_pool& pool, const char* bytes, std::size_t n);
    /// Drops the first `n` bytes (a handled request).
    void consume(std::size_t n) noexcept { begin_ += n; }
    /// The bytes, writable: a decoder that works in place (WebSocket's unmasking).
    std::span<char> bytes() noexcept { return {block_.data + begin_, end_ - begin_}; }
    /// Keeps the first `n` bytes only (n <= size()).
    void truncate(std::size_t n) noexcept { end_ = begin_ + n; }
    /// Gives the block back once every byte is handled: what an idle connection holds.
    void release_if_empty(buffer_pool& pool) noexcept;
    void release(buffer_pool& pool) noexcept;
    /// Frees the block without its pool: for an owner that may outlive the pool (a frame
    /// destroyed at a stop).
    void free() noexcept;

  private:
    buffer_pool::block block_;
    std::size_t begin_ = 0, end_ = 0;
};

}  // namespace plugd
