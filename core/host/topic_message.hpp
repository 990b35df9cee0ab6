// topic_message: one published message, stored once and shared by every subscriber.
#pragma once

#include <boost/intrusive_ptr.hpp>

#include <atomic>
#include <cstdint>
#include <string_view>

#include <plugd/event.hpp>

namespace plugd {

class topic_message;
/// A counted reference to a message. The count is touched once per serving thread a message
/// goes to (its post, its place in that thread's board), never once per subscriber.
using message_ref = boost::intrusive_ptr<const topic_message>;

/// A published message: its topic and bytes in one allocation, immutable once made, freed by
/// the last reference (on whichever thread drops it).
class topic_message {
  public:
    /// Copies `topic` and `payload` into one new allocation. `origin`: the serial of the
    /// subscriber that must not receive it (publish's `except`), 0 for none.
    static message_ref make(std::string_view topic, std::string_view payload, message_type type,
                            std::uint64_t origin);

    std::string_view topic() const noexcept { return {bytes(), topic_size_}; }
    std::string_view payload() const noexcept { return {bytes() + topic_size_, payload_size_}; }
    message_type type() const noexcept { return type_; }
    std::uint64_t origin() const noexcept { return origin_; }
    /// How many references there are now (tests check that every one is given back).
    std::uint32_t references() const noexcept {
        return references_.load(std::memory_order_relaxed);
    }

    friend void intrusive_ptr_add_ref(const topic_message* m) noexcept {
        m->references_.fetch_add(1, std::memory_order_relaxed);
    }
    friend void intrusive_ptr_release(const topic_message* m) noexcept {
        if (m->references_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(m);
    }

  private:
    topic_message(std::uint32_t topic_size, std::uint32_t payload_size, message_type type,
                  std::uint64_t origin) noexcept
        : topic_size_{topic_size}, payload_size_{payload_size}, type_{type}, origin_{origin} {}
    static void destroy(const topic_message* m) noexcept;
    const char* bytes() const noexcept { return reinterpret_cast<const char*>(this + 1); }

    mutable std::atomic<std::uint32_t> references_{0};
    std::uint32_t topic_size_;
    std::uint32_t payload_size_;
    message_type type_;
    std::uint64_t origin_;
    // Then the topic's bytes, then the payload's.
};

}  // namespace plugd
