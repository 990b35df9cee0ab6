// topic_directory: which serving threads have subscribers of each topic, for publishers on
// any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace plugd {

/// Topic → set of boards. A board writes it when its first subscriber of a topic arrives
/// and when its last one leaves (rare); a publish reads it once, under one stripe's shared
/// lock: the only lock on the publishing path, one per message, however many subscribers.
/// Stripes keep publishers to different topics, and boards changing them, apart.
class topic_directory {
  public:
    explicit topic_directory(std::size_t boards);

    void add(std::string_view topic, std::size_t board);
    void remove(std::string_view topic, std::size_t board) noexcept;

    /// Calls `f(board)` for each board with subscribers of `topic`, under the shared lock
    /// (`f` must neither block nor come back here).
    template <class F>
    void for_each_board(std::string_view topic, F&& f) const {
        const std::size_t h = hash{}(topic);
        const stripe& s = stripes_[h % stripe_count];
        std::shared_lock lock{s.mutex};
        const auto it = s.boards.find(topic);
        if (it == s.boards.end()) return;
        const std::vector<std::uint64_t>& mask = it->second;
        for (std::size_t w = 0; w < mask.size(); ++w) {
            for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1)
                f(w * 64 + static_cast<std::size_t>(__builtin_ctzll(bits)));
        }
    }

    /// How many topics have subscribers somewhere (for tests).
    std::size_t topics() const;

  private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    static constexpr std::size_t stripe_count = 64;
    struct alignas(64) stripe {
        mutable std::shared_mutex mutex;
        std::unordered_map<std::string, std::vector<std::uint64_t>, hash, std::equal_to<>> boards;
    };
    std::size_t words_;
    std::unique_ptr<stripe[]> stripes_;
};

}  // namespace plugd
