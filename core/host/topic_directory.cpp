// topic_directory: striped topic → boards maps.
#include "host/topic_directory.hpp"

#include <mutex>

namespace plugd {

topic_directory::topic_directory(std::size_t boards)
    : words_{(boards + 63) / 64}, stripes_{std::make_unique<stripe[]>(stripe_count)} {}

void topic_directory::add(std::string_view topic, std::size_t board) {
    stripe& s = stripes_[hash{}(topic) % stripe_count];
    std::unique_lock lock{s.mutex};
    auto it = s.boards.find(topic);
    if (it == s.boards.end())
        it = s.boards.emplace(std::string{topic}, std::vector<std::uint64_t>(words_)).first;
    it->second[board / 64] |= std::uint64_t{1} << (board % 64);
}

void topic_directory::remove(std::string_view topic, std::size_t board) noexcept {
    stripe& s = stripes_[hash{}(topic) % stripe_count];
    std::unique_lock lock{s.mutex};
    const auto it = s.boards.find(topic);
    if (it == s.boards.end()) return;
    it->second[board / 64] &= ~(std::uint64_t{1} << (board % 64));
    for (const std::uint64_t w : it->second) {
        if (w != 0) return;
    }
    s.boards.erase(it);
}

std::size_t topic_directory::topics() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < stripe_count; ++i) {
        std::shared_lock lock{stripes_[i].mutex};
        n += stripes_[i].boards.size();
    }
    return n;
}

}  // namespace plugd
