// buffer_pool: free lists per power-of-two size class.
#include "serving/buffer_pool.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

namespace plugd {
namespace {

std::size_t class_of(std::size_t size) noexcept {
    const std::size_t rounded = std::bit_ceil(std::max(size, buffer_pool::smallest_block));
    return static_cast<std::size_t>(std::countr_zero(rounded) -
                                    std::countr_zero(buffer_pool::smallest_block));
}

}  // namespace

buffer_pool::~buffer_pool() {
    for (auto& list : free_) {
        for (char* p : list) delete[] p;
    }
}

buffer_pool::block buffer_pool::take(std::size_t size) {
    const std::size_t c = class_of(size);
    if (c >= classes) throw std::bad_alloc{};
    const std::size_t bytes = smallest_block << c;
    if (!free_[c].empty()) {
        char* p = free_[c].back();
        free_[c].pop_back();
        return {p, bytes};
    }
    return {new char[bytes], bytes};
}

void buffer_pool::give(block b) noexcept {
    if (!b.data) return;
    const std::size_t c = class_of(b.size);
    auto& list = free_[c];
    if (list.size() < std::max<std::size_t>(4, kept_bytes_per_class / b.size)) {
        try {
            list.push_back(b.data);
            return;
        } catch (const std::bad_alloc&) {
            // No room to remember it: free it below.
        }
    }
    delete[] b.data;
}

std::string buffer_pool::take_string() noexcept {
    if (strings_.empty()) return {};
    std::string s = std::move(strings_.back());
    strings_.pop_back();
    return s;
}

void buffer_pool::give_string(std::string&& s) noexcept {
    s.clear();
    // Only heap storage is worth keeping; and not a huge one a single burst left behind.
    if (s.capacity() <= std::string{}.capacity() || s.capacity() > kept_string_capacity ||
        strings_.size() >= kept_strings) {
        std::string{}.swap(s);
        return;
    }
    try {
        strings_.push_back(std::move(s));
    } catch (const std::bad_alloc&) {
        std::string{}.swap(s);
    }
}

void request_bytes::append(buffer_pool& pool, const char* bytes, std::size_t n) {
    if (block_.size - end_ < n) {
        const std::size_t kept = size();
        if (kept + n <= block_.size) {
            std::memmove(block_.data, block_.data + begin_, kept);
        } else {
            const auto bigger = pool.take(kept + n);
            if (kept) std::memcpy(bigger.data, block_.data + begin_, kept);
            pool.give(block_);
            block_ = bigger;
        }
        begin_ = 0;
        end_ = kept;
    }
    std::memcpy(block_.data + end_, bytes, n);
    end_ += n;
}

void request_bytes::release_if_empty(buffer_pool& pool) noexcept {
    if (empty()) release(pool);
}

void request_bytes::release(buffer_pool& pool) noexcept {
    pool.give(block_);
    block_ = {};
    begin_ = end_ = 0;
}

void request_bytes::free() noexcept {
    delete[] block_.data;  // the pool's blocks are new char[]
    block_ = {};
    begin_ = end_ = 0;
}

}  // namespace plugd
