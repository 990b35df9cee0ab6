// websocket_session: an http connection after its upgrade, as the plugd::session a plugin
// serves: RFC 6455 frames (framing/websocket_frames) over the connection's transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <plugd/session.hpp>

#include "framing/websocket_frames.hpp"
#include "host/subscriber_endpoint.hpp"
#include "serving/buffer_pool.hpp"
#include "serving/client_events.hpp"

namespace plugd {

struct client_connection;
struct chain_slot;
struct dispatch_table;
class plugin_version;

/// One session, owned by its coroutine (connection.cpp's serve_session), on its
/// connection's thread. It keeps nothing but a few words while idle: the client's bytes
/// wait in the connection's pooled input (released when empty), a message is unmasked and
/// joined where it lies, and the frames it sends go out from the shard's scratch buffer.
///
/// A frame sent while more published messages are queued for the session waits in its cork
/// (a pooled buffer, up to cork_bytes) for the ones that follow: the plugin's next sends
/// join it, and it goes out in one write when a send finds nothing more queued, before
/// next() waits, before any frame the core writes, or (when the plugin waits on something
/// else meanwhile) once the thread has run what was queued. A busy room's subscriber gets
/// several messages per write instead of a write per message.
///
/// Timing is the shard's sweeper's, by the connection's phase: while the plugin waits in
/// next() (`waiting`), a ping every ping_interval_ms of silence and a close (1000) after
/// idle_timeout_ms; a frame begun and not ended within request_timeout_ms (`receiving`) is
/// closed with 1008; sends are `writing` (write_timeout_ms). Control frames the server
/// writes by itself (pings, the close of a drain) only go out while no send is under way,
/// so frames never interleave.
class websocket_session final : public plugd::session, public subscriber_endpoint {
  public:
    /// The most a cork holds: past it, what is corked goes out first.
    static constexpr std::size_t cork_bytes = 16 * 1024;

    /// `table` and `chain`: where the upgrade request went; the session_begins() pins.
    websocket_session(client_connection& c, dispatch_table& table, const chain_slot& chain,
                      std::string_view path_rest);
    ~websocket_session();

    // plugd::session
    task<event> next() override;
    task<void> send(std::string_view data, message_type type) override;
    task<void> forward(const event& published) override;
    task<void> close(std::uint16_t code, std::string_view reason) override;
    std::string_view peer() const noexcept override;
    std::string_view listener() const noexcept override;
    std::string_view route() const noexcept override;
    std::string_view path_rest() const noexcept override { return path_rest_; }
    std::string_view attached(std::string_view key) const noexcept override;

    // subscriber_endpoint
    void wake() noexcept override;
    void fell_behind(slow_subscriber_policy policy) noexcept override;

    /// The upgrade's 101 (with any replies pipelined before it), corked: it goes out with
    /// the session's first write, so that what serve_session does before its first wait
    /// (subscribing to its topics) is in place before the client learns that the session
    /// is open. Throws std::bad_alloc.
    void hold_upgrade_reply(std::string_view bytes);
    /// serve_session is about to start: should it wait on something other than the client
    /// first, what it left in the cork (the 101, at least) goes out once the thread has run
    /// what is queued (posted now: serve_session runs to its first wait before that).
    void serving_began() noexcept;

    dispatch_table& table() const noexcept { return table_; }
    const chain_slot& chain() const noexcept { return chain_; }
    /// Whether `version` is the one serving it (a drain's question); false once released.
    bool runs(const plugin_version* version) const noexcept;
    /// The plugin is done with it: the pins go (session_ends), and with them maybe the
    /// table `chain()` is in, so runs() no longer looks there.
    void release() noexcept { released_ = true; }
    /// When the upgrade was answered, for the access log (only with one).
    std::chrono::steady_clock::time_point started() const noexcept { return started_; }
    /// The sweeper, while it waits for the client (`waiting`, `receiving`), quiet for `age`.
    void sweep(std::chrono::milliseconds age) noexcept;
    /// reload_drain_timeout_ms ran out on its version: 1001 to the client (unless a send is
    /// under way), and the plugin's pending call throws operation_aborted.
    void drain_timeout() noexcept;
    /// After serve_session: closes with `code` unless a close was sent already, then waits
    /// (at most about 2 s: the sweeper's lingering phase) for the client's close.
    task<void> finish(std::uint16_t code, std::string_view reason);

    /// How it ended, for the access log and /metrics: the close code received or sent
    /// first (1006: the client vanished).
    std::uint16_t close_code() const noexcept { return close_code_; }
    std::size_t bytes_in() const noexcept { return bytes_in_; }
    std::size_t bytes_out() const noexcept { return bytes_out_; }

  private:
    /// Ends the session from the server's side with `code` at the next chance next() has
    /// (the sweeper's timeouts, a stop): it is woken and sends the close itself.
    void end_by_server(std::uint16_t code, const char* reason) noexcept;
    /// What frame_written_now() did with a frame.
    enum class frame_progress : std::uint8_t {
        sent,       ///< written, or corked to go out with the next
        cork_left,  ///< part of it (after the cork) waits in the cork for the socket
        none,       ///< nothing: larger than the cork takes (finish_frame writes it)
    };
    /// Writes one frame (or corks it, see above) as far as the socket takes it now. The
    /// common case of every send, done without a coroutine: a frame of one would be
    /// recycled (Asio's per-thread cache) into the next coroutine frame of whatever size,
    /// and next()'s lives as long as the session idles. Throws once the session is over or
    /// the write failed, and std::bad_alloc.
    frame_progress frame_written_now(ws_opcode opcode, std::string_view payload);
    /// The rest of a frame frame_written_now() did not finish: waits for the socket.
    task<void> finish_frame(frame_progress progress, ws_opcode opcode, std::string_view payload);
    /// Appends `a` and `b` (a frame) to the cork, arming the deferred write when it was
    /// empty. Throws std::bad_alloc, leaving the cork as it was.
    void cork(std::string_view a, std::string_view b = {});
    /// Posts the cork's write, for when the plugin waits on something else (see above).
    /// Throws std::bad_alloc.
    void defer_write();
    /// Corks a close frame (once) and marks the session closed; false when one went out
    /// already or nothing can be written any more.
    bool cork_close(std::uint16_t code, std::string_view reason);
    /// Whether more published messages are queued for it now: a send may wait for them.
    bool more_published() const noexcept;
    /// Writes the cork as far as the socket takes it now: true when all of it went (or the
    /// write failed: that marks the session broken), false when the rest is to be awaited
    /// (write_cork_rest()).
    bool cork_written_now() noexcept;
    /// Writes the rest of the cork, waiting for the socket.
    task<void> write_cork_rest();
    /// The cork, without waiting: what the socket takes now (the deferred call's work,
    /// while the plugin waits on something else).
    void write_corked_now() noexcept;
    /// Counts `n` bytes written to the client.
    void wrote(std::size_t n) noexcept;
    /// Sends a close frame (once) and marks the session closed; failures end it quietly.
    task<void> send_close(std::uint16_t code, std::string_view reason);
    /// What next() is to do after advance().
    enum class step : std::uint8_t {
        ready,  ///< event_ is the event to return
        write,  ///< write the cork (frames the core made, what the plugin sent), then advance
        wait,   ///< wait for the client's bytes or a published message, then advance
    };
    /// next()'s work between waits, without waiting: decodes what is buffered, answers
    /// pings and closes (in the cork), takes published messages, reads what has arrived.
    /// `need_bytes`: the buffered bytes are an incomplete frame.
    step advance(bool& need_bytes);
    /// What read_arrived() found.
    enum class arrival : std::uint8_t {
        bytes,    ///< appended to the connection's input (and counted)
        nothing,  ///< nothing now: the readability wait is armed
        gone,     ///< the connection ended (end of input, reset, an error)
    };
    /// Reads what has arrived, without waiting.
    arrival read_arrived();
    /// The oldest message queued for it on its topics, or null (topic_board::take).
    const topic_message* take_published() noexcept;
    /// Makes `m` the event next() returns.
    step deliver(const topic_message& m) noexcept;
    /// Makes the end the event next() returns.
    void set_closed(std::uint16_t code, std::string_view reason) noexcept;
    void ensure_open() const;
    /// Throws broken_pipe once a write failed: what a send reports then.
    void ensure_writable() const;

    client_connection& c_;
    dispatch_table& table_;
    const chain_slot& chain_;
    std::string path_rest_;
    /// The reason in the client's close, for the end event: in the connection's input, with
    /// the close frame (consume_).
    std::string_view close_reason_;
    events_ptr events_;
    ws_decoder decoder_;
    request_bytes corked_;  ///< frames not written yet (see above); a pooled block or none
    detail::event_state event_;
    std::size_t bytes_in_ = 0;
    std::size_t bytes_out_ = 0;
    const char* server_reason_ = "";
    /// Bytes of the message (or close) next() returned last, to drop next: a frame of at
    /// most max_message_bytes (1 GiB), so 32 bits.
    std::uint32_t consume_ = 0;
    /// The phase a ping was sent in: its sequence number's low 32 bits (a match 2^32 phases
    /// later would only skip one ping).
    std::uint32_t pinged_phase_ = ~std::uint32_t{0};
    std::uint16_t server_code_ = 0;  ///< set: the server ends it with this code
    std::uint16_t close_code_ = 0;
    // (Bits: the session's size is what an idle session costs.)
    bool close_sent_ : 1 = false;
    bool close_received_ : 1 = false;
    bool ended_ : 1 = false;         ///< next() returned the end
    bool cut_off_ : 1 = false;       ///< closed by the slow_subscriber policy
    bool client_turn_ : 1 = true;    ///< when both kinds are ready, which next() returns
    bool write_failed_ : 1 = false;  ///< the socket is broken: nothing more is written
    bool refused_ : 1 = false;       ///< a frame was refused: the decoder is done, no lingering
    bool released_ : 1 = false;      ///< see release()
    std::chrono::steady_clock::time_point started_;
};

}  // namespace plugd
