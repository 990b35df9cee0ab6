// raw_stream: a `raw` listener's connection as the plugd::connection a plugin serves.
#pragma once

#include <string>

#include "serving/buffered_connection.hpp"

namespace plugd {

struct client_connection;

/// Reads and writes the connection's socket for handler::serve, under the listener's
/// limits. Each call marks the connection's phase, so the shard's sweeper times it as it
/// times any request: a read waits at most idle_timeout_ms (then reads 0, as does a read
/// once the server closes the connection), a write at most write_timeout_ms, the plugin's
/// work between calls at most request_timeout_ms (both then cancel the connection), and
/// the rest of a message read_until or read_exactly has begun at most request_timeout_ms
/// (the `receiving` phase: a client trickling a byte now and then cannot hold it open).
class raw_stream final : public buffered_connection {
  public:
    explicit raw_stream(client_connection& c) noexcept : c_{c} {}

    task<void> write(std::string_view bytes) override;
    void recycle() noexcept override {}
    void close() noexcept override;
    std::string_view peer() const noexcept override;
    std::string_view listener() const noexcept override;

    std::size_t bytes_in() const noexcept { return bytes_in_; }
    std::size_t bytes_out() const noexcept { return bytes_out_; }

  protected:
    task<bool> fill(std::string& buffer, bool mid_message) override;
    void message_complete() noexcept override;
    std::size_t max_read_bytes() const noexcept override;

  private:
    client_connection& c_;
    std::size_t bytes_in_ = 0;
    std::size_t bytes_out_ = 0;
};

}  // namespace plugd
