// buffered_connection: read_some, read_until and read_exactly over one buffer, for every
// plugd::connection the core implements.
#pragma once

#include <cstddef>
#include <string>

#include <plugd/connection.hpp>

namespace plugd {

/// The reading half of a plugd::connection, in terms of fill(): bytes read past what a call
/// returns stay buffered for the next one. Used by the `raw` listeners' raw_stream and by
/// the test harness's in-process connections.
class buffered_connection : public plugd::connection {
  public:
    task<std::size_t> read_some(char* data, std::size_t size) override;
    task<std::string> read_until(std::string_view delimiter, std::size_t max_bytes) override;
    task<std::string> read_exactly(std::size_t size) override;

  protected:
    /// Appends what arrives next to `buffer`; false when the peer closed (or the connection
    /// is closing), after which reads return what is buffered, then 0. `mid_message`: a
    /// read_until or read_exactly has bytes of its message already, so the wait is for the
    /// rest of it (raw_stream bounds that by request_timeout_ms, not by each read).
    virtual task<bool> fill(std::string& buffer, bool mid_message) = 0;
    /// A read_until or read_exactly has its whole message.
    virtual void message_complete() noexcept {}
    /// The most read_until and read_exactly may gather (max_request_bytes).
    virtual std::size_t max_read_bytes() const noexcept = 0;

    /// close() was called: every later read or write throws (check_open()).
    void mark_closed() noexcept { closed_ = true; }
    /// Throws std::runtime_error, naming the peer, once mark_closed() was called.
    void check_open() const;

  private:
    std::string buffered_;
    bool closed_ = false;
};

}  // namespace plugd
