// buffered_stream: the reads every core stream shares.
#include "host/buffered_stream.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace plugd {

template <class Interface>
task<std::size_t> buffered_stream<Interface>::read_some(char* data, std::size_t size) {
    if (size == 0) co_return 0;
    if (buffered_.empty() && !co_await fill(buffered_, false)) co_return 0;
    const std::size_t n = std::min(size, buffered_.size());
    std::memcpy(data, buffered_.data(), n);
    buffered_.erase(0, n);
    co_return n;
}

template <class Interface>
task<std::string> buffered_stream<Interface>::read_until(std::string_view delimiter,
                                                         std::size_t max_bytes) {
    if (delimiter.empty()) throw std::invalid_argument("read_until: the delimiter is empty");
    const std::size_t limit = std::min(max_bytes, max_read_bytes());
    std::size_t searched = 0;
    for (;;) {
        const auto at = buffered_.find(delimiter, searched);
        if (at != std::string::npos && at + delimiter.size() <= limit) {
            std::string line = buffered_.substr(0, at + delimiter.size());
            buffered_.erase(0, line.size());
            message_complete();
            co_return line;
        }
        if (at != std::string::npos || buffered_.size() >= limit) {
            message_refused();
            throw std::length_error(describe() + ": more than " + std::to_string(limit) +
                                    " bytes without the delimiter (" +
                                    (limit < max_bytes ? "max_request_bytes" : "max_bytes") + ")");
        }
        // The delimiter may straddle what is buffered and what comes next.
        searched =
            buffered_.size() >= delimiter.size() ? buffered_.size() - delimiter.size() + 1 : 0;
        if (!co_await fill(buffered_, !buffered_.empty())) {
            if (buffered_.empty()) co_return std::string{};  // closed between messages
            throw std::runtime_error(describe() +
                                     " closed in the middle of a message (before the "
                                     "delimiter)");
        }
    }
}

template <class Interface>
task<std::string> buffered_stream<Interface>::read_exactly(std::size_t size) {
    if (size > max_read_bytes()) {
        message_refused();
        throw std::length_error(describe() + ": read_exactly(" + std::to_string(size) +
                                ") is above max_request_bytes (" +
                                std::to_string(max_read_bytes()) + ")");
    }
    while (buffered_.size() < size) {
        if (!co_await fill(buffered_, !buffered_.empty())) {
            if (buffered_.empty()) co_return std::string{};  // closed between messages
            throw std::runtime_error(describe() + " closed after " +
                                     std::to_string(buffered_.size()) + " of " +
                                     std::to_string(size) + " bytes");
        }
    }
    std::string bytes = buffered_.substr(0, size);
    buffered_.erase(0, size);
    message_complete();
    co_return bytes;
}

template class buffered_stream<plugd::stream>;
template class buffered_stream<plugd::connection>;

}  // namespace plugd
