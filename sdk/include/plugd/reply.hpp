// plugd::reply: where a handler writes its answer.
#pragma once

#include <string>
#include <string_view>

namespace plugd {

/// The answer to one request. It appends to the connection's own output buffer, which is
/// reused from request to request, so answering costs no allocation once the buffer has
/// grown to the usual reply size.
///
/// In `line` framing the core adds the terminating `\n`; do not write one yourself. If the
/// handler throws, whatever it appended is discarded and the client gets an error instead.
/// Not thread-safe: use it only from the `handle` call that received it.
class reply {
  public:
    /// Used by the core; `buffer` must outlive the reply.
    explicit reply(std::string& buffer) noexcept : buffer_{&buffer}, start_{buffer.size()} {}

    /// Appends bytes to the answer. Throws `std::bad_alloc` only.
    reply& append(std::string_view bytes) {
        buffer_->append(bytes);
        return *this;
    }
    reply& operator<<(std::string_view bytes) { return append(bytes); }

    /// What has been written so far.
    std::string_view view() const noexcept { return std::string_view{*buffer_}.substr(start_); }
    /// Discards what has been written so far.
    void clear() noexcept { buffer_->resize(start_); }

  private:
    std::string* buffer_;
    std::size_t start_;
};

}  // namespace plugd
