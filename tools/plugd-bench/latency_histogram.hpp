// latency_histogram: microsecond latencies in log-linear buckets (about 1.5% resolution),
// so percentiles of millions of samples cost a few kilobytes and no sorting.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace plugd::bench {

class latency_histogram {
  public:
    void record(std::uint64_t us) noexcept {
        ++counts_[index(us)];
        ++count_;
        max_ = std::max(max_, us);
    }

    void merge(const latency_histogram& other) noexcept {
        for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
        count_ += other.count_;
        max_ = std::max(max_, other.max_);
    }

    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t max() const noexcept { return max_; }

    /// The smallest recorded value with at least `p` of the samples at or below it (to the
    /// bucket's resolution); 0 without samples.
    std::uint64_t percentile(double p) const noexcept {
        if (count_ == 0) return 0;
        const auto wanted = static_cast<std::uint64_t>(p * static_cast<double>(count_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= wanted) return std::min(upper(i), max_);
        }
        return max_;
    }

  private:
    // Exact below 128 us; above, 64 buckets per power of two.
    static constexpr unsigned linear = 128;
    static constexpr unsigned per_octave = 64;

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < linear) return static_cast<std::size_t>(v);
        const unsigned octave = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= 7
        const auto sub = static_cast<unsigned>((v >> (octave - 6)) & (per_octave - 1));
        return std::min<std::size_t>(linear + (octave - 7) * per_octave + sub, buckets - 1);
    }
    static std::uint64_t upper(std::size_t i) noexcept {
        if (i < linear) return i;
        const unsigned octave = static_cast<unsigned>((i - linear) / per_octave) + 7;
        const std::uint64_t sub = (i - linear) % per_octave;
        return ((per_octave + sub + 1) << (octave - 6)) - 1;
    }

    static constexpr std::size_t buckets = linear + (64 - 7) * per_octave;
    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
};

}  // namespace plugd::bench
