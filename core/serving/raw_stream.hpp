// raw_stream: a `raw` listener's connection as the plugd::connection a plugin serves.
#pragma once

#include <optional>
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
/// next() waits the same way, for bytes or a topic message, whichever comes first: each
/// event it returns starts the idle clock again.
class raw_stream final : public buffered_connection {
  public:
    explicit raw_stream(client_connection& c) noexcept;
    ~raw_stream();

    task<void> write(std::string_view bytes) override;
    void recycle() noexcept override {}
    void close() noexcept override;
    std::string_view peer() const noexcept override;
    std::string_view listener() const noexcept override;

    std::size_t bytes_in() const noexcept { return bytes_in_; }
    std::size_t bytes_out() const noexcept { return bytes_out_; }

  protected:
    task<bool> fill(std::string& buffer, bool mid_message) override;
    task<arrival> receive(std::string& buffer, bool mid_message, bool wakeable) override;
    void message_complete() noexcept override;
    std::size_t max_read_bytes() const noexcept override;
    void delivered() noexcept override;
    void slow_subscriber(slow_subscriber_policy policy) noexcept override;

  private:
    /// What has arrived, without waiting: nullopt when the socket has nothing now (then a
    /// wait is due; with client_events, its readability wait is armed).
    std::optional<arrival> take_arrived(std::string& buffer, bool mid_message);
    /// Around a wait for readability: reclaimable while between messages, woken by
    /// close_when_idle; a cancelled wait (a timeout, a drain) throws after it.
    void begin_wait(const std::string& buffer) noexcept;
    void end_wait(boost::system::error_code ec);

    client_connection& c_;
    std::size_t bytes_in_ = 0;
    std::size_t bytes_out_ = 0;
};

}  // namespace plugd
