// topic_message: the one allocation a published message takes.
#include "host/topic_message.hpp"

#include <cstring>
#include <new>

namespace plugd {

message_ref topic_message::make(std::string_view topic, std::string_view payload, message_type type,
                                std::uint64_t origin) {
    void* memory = ::operator new(sizeof(topic_message) + topic.size() + payload.size());
    auto* m = new (memory) topic_message{static_cast<std::uint32_t>(topic.size()),
                                         static_cast<std::uint32_t>(payload.size()), type, origin};
    char* bytes = reinterpret_cast<char*>(m + 1);
    // (An empty view's data() may be null, which memcpy must not be given.)
    if (!topic.empty()) std::memcpy(bytes, topic.data(), topic.size());
    if (!payload.empty()) std::memcpy(bytes + topic.size(), payload.data(), payload.size());
    return message_ref{m};
}

void topic_message::destroy(const topic_message* m) noexcept {
    m->~topic_message();
    ::operator delete(const_cast<topic_message*>(m));
}

}  // namespace plugd
