// plugd::shared_map: state the core keeps for a plugin instance across reloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plugd {

/// A string→bytes map the core owns per plugin **instance name** (the key under `/plugins`
/// in server.json). It outlives every version of the instance: a reload to new code or a
/// new config keeps it, and the old and the new version, while both run during a drain,
/// see the same map. It is dropped when the instance is removed from server.json. With
/// `"state_file"` set for the instance, it is written to that file on a graceful stop
/// and read back at start-up. With `"workers": N`, it is one map for all worker processes
/// (in shared memory): what one worker sets, every other reads.
///
/// Thread-safety: every member may be called concurrently from any thread (worker threads,
/// offloaded jobs, background tasks). Each call is atomic on its own; combine calls with
/// care (`increment` exists so that counters need no read-modify-write).
/// Lifetime: owned by the core; valid as long as the `context` that returned it.
/// Since SDK 1.1. New members are only ever appended (see `version.hpp`).
class shared_map {
  public:
    /// The value at `key`, or nullopt when there is none or its time to live has passed.
    virtual std::optional<std::string> get(std::string_view key) const = 0;

    /// Sets `key` to `value`. With a `ttl` above zero the entry disappears that long after
    /// this call. Throws `std::length_error`, saying so, when the instance's byte budget
    /// (`shared_bytes`, default 64 MiB; keys and values count) would be exceeded; the
    /// map is then unchanged.
    virtual void set(std::string_view key, std::string_view value,
                     std::chrono::milliseconds ttl = std::chrono::milliseconds{0}) = 0;

    /// Removes `key`; true when it was there.
    virtual bool erase(std::string_view key) = 0;

    /// Adds `delta` to the decimal integer at `key` (a missing key counts as 0), keeps the
    /// entry's time to live, and returns the new value. Throws `std::invalid_argument` when
    /// the value there is not a decimal integer or the result would overflow, and
    /// `std::length_error` as `set` does.
    virtual std::int64_t increment(std::string_view key, std::int64_t delta = 1) = 0;

    /// How many live entries there are.
    virtual std::size_t size() const = 0;

  protected:
    ~shared_map() = default;
};

}  // namespace plugd
