// buffered_stream: read_some, read_until and read_exactly over one buffer, for every
// plugd::stream the core implements: outbound streams and the connections of `raw`
// listeners and of the test harness (serving/buffered_connection).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <plugd/connection.hpp>
#include <plugd/stream.hpp>

namespace plugd {

/// The reading half of `Interface` (plugd::stream or plugd::connection) in terms of fill():
/// bytes read past what a call returns stay buffered for the next one. Defined for those
/// two interfaces only (buffered_stream.cpp).
template <class Interface>
class buffered_stream : public Interface {
  public:
    task<std::size_t> read_some(char* data, std::size_t size) override;
    /// Refuses a message longer than max_bytes or max_read_bytes(), whichever is smaller,
    /// even when its delimiter has already arrived.
    task<std::string> read_until(std::string_view delimiter, std::size_t max_bytes) override;
    task<std::string> read_exactly(std::size_t size) override;

  protected:
    /// Appends what arrives next to `buffer`; false when the peer closed (or the connection
    /// is closing), after which reads return what is buffered, then 0 (or "" between two
    /// messages). `mid_message`: a read_until or read_exactly has bytes of its message
    /// already, so the wait is for the rest of it (raw_stream bounds that by
    /// request_timeout_ms, not by each read).
    virtual task<bool> fill(std::string& buffer, bool mid_message) = 0;
    /// A read_until or read_exactly has its whole message.
    virtual void message_complete() noexcept {}
    /// A read_until or read_exactly refused its message (std::length_error): what was
    /// buffered is not a message's start any more.
    virtual void message_refused() noexcept {}
    /// The most read_until and read_exactly may gather (a listener's max_request_bytes).
    virtual std::size_t max_read_bytes() const noexcept = 0;
    /// What error messages name: "connection from 192.0.2.1:5000".
    virtual std::string describe() const = 0;

    /// Read and not yet returned to the plugin.
    const std::string& buffered() const noexcept { return buffered_; }
    std::string& buffered() noexcept { return buffered_; }

  private:
    std::string buffered_;
};

extern template class buffered_stream<plugd::stream>;
extern template class buffered_stream<plugd::connection>;

}  // namespace plugd
