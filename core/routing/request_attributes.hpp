// attribute_store: the values filters attach to one request (request::attach) for the
// plugins after them in its chain.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <plugd/request.hpp>

namespace plugd {

/// A flat list of key/value strings, searched in order: a request carries a handful at
/// most (who the client is, a tenant), where a linear search beats any hash. Meant to be
/// reused from request to request on one connection: clear() keeps every string's
/// capacity, so a steady stream of requests attaching the same keys allocates nothing.
/// Not thread-safe: one request's chain uses it, on one thread at a time.
class attribute_store final : public detail::request_attributes {
  public:
    /// Sets `key` to `value` (a copy of each), replacing an earlier value of `key`.
    /// Throws std::bad_alloc only.
    void set(std::string_view key, std::string_view value) override {
        for (std::size_t i = 0; i < used_; ++i) {
            if (entries_[i].first == key) {
                entries_[i].second.assign(value);
                return;
            }
        }
        if (used_ == entries_.size()) entries_.emplace_back();
        entries_[used_].first.assign(key);
        entries_[used_].second.assign(value);
        ++used_;
    }

    /// The value set for `key`; empty when none was. Valid until the next set() of that
    /// key or clear().
    std::string_view get(std::string_view key) const noexcept override {
        for (std::size_t i = 0; i < used_; ++i) {
            if (entries_[i].first == key) return entries_[i].second;
        }
        return {};
    }

    /// Forgets every value, keeping the memory for the next request.
    void clear() noexcept { used_ = 0; }

    /// How many keys are set.
    std::size_t size() const noexcept { return used_; }

  private:
    // Entries past used_ are spare: their strings keep their capacity for reuse.
    std::vector<std::pair<std::string, std::string>> entries_;
    std::size_t used_ = 0;
};

}  // namespace plugd
