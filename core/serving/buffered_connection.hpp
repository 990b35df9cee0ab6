// buffered_connection: a plugd::connection the core implements, reading over one buffer,
// and a subscriber of topics with next().
#pragma once

#include <memory>
#include <string>

#include <plugd/connection.hpp>

#include "host/buffered_stream.hpp"
#include "host/subscriber_endpoint.hpp"
#include "serving/client_events.hpp"

namespace plugd {

/// The reading half of a plugd::connection (see buffered_stream), its closed state, and
/// next(): the client's next message or a message of its topics, in one wait. Used by the
/// `raw` listeners' raw_stream and by the test harness's in-process connections; each says
/// how its bytes arrive (fill, receive).
class buffered_connection : public buffered_stream<plugd::connection>, public subscriber_endpoint {
  public:
    task<event> next(std::string_view delimiter) override;

    void wake() noexcept override;
    void fell_behind(slow_subscriber_policy policy) noexcept override;

  protected:
    /// `board`: the serving thread it runs on; `l`: its listener's limits.
    buffered_connection(std::size_t board, const limits& l) noexcept
        : subscriber_endpoint{board, l} {}
    /// Ends its subscriptions.
    ~buffered_connection();

    /// What receive() came to.
    enum class arrival : std::uint8_t {
        bytes,          ///< appended to the buffer
        woken,          ///< a topic message may be queued (next() waits only)
        client_closed,  ///< end of input
        server_closed,  ///< the server ends the connection (a stop, a listener removed, idle)
    };
    /// Appends what arrives next to `buffer`, waiting for it if none has. From next()
    /// (`wakeable`), the wait also ends when a topic message is queued for the connection.
    /// `mid_message`: bytes of a message are buffered already (see fill).
    virtual task<arrival> receive(std::string& buffer, bool mid_message, bool wakeable) = 0;
    /// Counts a published message next() returns (the listener's deliveries).
    virtual void delivered() noexcept {}
    /// It fell behind (after the policy was applied; `close` already made next() return
    /// closed): counts and says so, and for `close` ends a write the client does not read.
    virtual void slow_subscriber(slow_subscriber_policy policy) noexcept { (void)policy; }

    /// close() was called: every later read or write throws (check_open()).
    void mark_closed() noexcept { closed_ = true; }
    /// Throws std::runtime_error, naming the peer, once mark_closed() was called.
    void check_open() const;
    /// "connection from <peer>".
    std::string describe() const override;

    /// The socket's readiness and the topics' wakes, made by receive() at its first wait
    /// from next(); none for a connection that never called it.
    events_ptr events_;

  private:
    event closed_event(std::uint16_t code, std::string_view reason) noexcept;

    bool closed_ = false;
    bool cut_off_ = false;     ///< closed by the slow_subscriber policy: next() says so
    bool client_turn_ = true;  ///< when both kinds are ready, which next() returns
    detail::event_state event_;
    std::string message_;  ///< the client's message event_ shows
};

}  // namespace plugd
