// plugd::reply: where a handler writes its answer.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace plugd {

/// How an `http` listener answers besides the body. Filled by the handler through `reply`,
/// read by the core. Since SDK 1.2.
struct http_reply_head {
    int status = 200;
    std::string* fields = nullptr;  ///< "Name: value\r\n" lines the core sends as they are
};

/// The answer to one request. It appends to the connection's own output buffer, which is
/// reused from request to request, so answering costs no allocation once the buffer has
/// grown to the usual reply size.
///
/// In `line` framing the core adds the terminating `\n`; do not write one yourself. On an
/// `http` listener what is written is the response body (`Content-Type: text/plain`
/// unless a header says otherwise). If the handler throws, whatever it appended is
/// discarded and the client gets an error instead.
/// Not thread-safe: use it only from the `handle` call that received it.
class reply {
  public:
    /// Used by the core; `buffer` (and `http`) must outlive the reply.
    explicit reply(std::string& buffer, http_reply_head* http = nullptr) noexcept
        : buffer_{&buffer}, start_{buffer.size()}, http_{http} {}

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

    // ---- since SDK 1.2 (appended: the members above keep their places) ----

    /// On an `http` listener: the response status, 200 unless set (100 to 599). Ignored
    /// elsewhere. Throws std::invalid_argument for a number outside that range.
    void status(int code) {
        if (code < 100 || code > 599) throw std::invalid_argument("HTTP status out of range");
        if (http_) http_->status = code;
    }
    /// On an `http` listener: adds a response header field; ignored elsewhere. The core
    /// sets Content-Length and Connection itself: naming either throws
    /// std::invalid_argument, as does a name or value holding a line break.
    void header(std::string_view name, std::string_view value) {
        const auto is = [&](std::string_view other) {
            if (name.size() != other.size()) return false;
            for (std::size_t i = 0; i < name.size(); ++i) {
                const char c =
                    name[i] >= 'A' && name[i] <= 'Z' ? char(name[i] - 'A' + 'a') : name[i];
                if (c != other[i]) return false;
            }
            return true;
        };
        if (name.empty() || is("content-length") || is("connection") ||
            name.find_first_of(":\r\n") != std::string_view::npos ||
            value.find_first_of("\r\n") != std::string_view::npos) {
            throw std::invalid_argument("plugd::reply::header: \"" + std::string{name} +
                                        "\" cannot be set by a plugin");
        }
        if (!http_ || !http_->fields) return;
        http_->fields->append(name).append(": ").append(value).append("\r\n");
    }

    // ---- since SDK 1.4 (appended: the members above keep their places) ----

    /// On an `http` listener: the status set so far (200 unless set); 200 elsewhere. A filter
    /// reads it after awaiting the rest of its chain.
    int status() const noexcept { return http_ ? http_->status : 200; }
    /// On an `http` listener: the header fields set so far, as "Name: value\r\n" lines;
    /// empty elsewhere.
    std::string_view headers() const noexcept {
        return http_ && http_->fields ? std::string_view{*http_->fields} : std::string_view{};
    }

  private:
    std::string* buffer_;
    std::size_t start_;
    http_reply_head* http_;
};

}  // namespace plugd
