// client_events: "bytes from the client OR a message on its topics" as one wait, for a
// connection's next(), without cancelling anything per message.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <boost/system/error_code.hpp>

#include <optional>
#include <utility>

namespace plugd {

class client_events;
using events_ptr = boost::intrusive_ptr<client_events>;

/// One connection's readiness: its socket's readability, watched by one readability wait
/// that stays armed across topic messages (a topic message completes the connection's wait
/// without touching it), and wakes from its topic board. A wait ends when the socket becomes
/// readable, at a wake, or with operation_aborted when the waiting coroutine is cancelled
/// (a timeout, a drain). Everything runs on the connection's thread. Held by a counted
/// pointer (events_ptr): the armed wait's callback keeps it alive, since that wait may
/// complete after the connection's serve() has ended (when the socket closes). The count is
/// intrusive and not atomic (one thread): an idle connection pays 8 bytes for the pointer
/// and no control block.
class client_events
    : public boost::intrusive_ref_counter<client_events, boost::thread_unsafe_counter> {
  public:
    explicit client_events(boost::asio::io_context& io) noexcept : io_{io} {}

    /// False once a read found nothing, until the armed wait reports readability: only then
    /// is the next read worth its system call.
    bool maybe_readable() const noexcept { return readable_; }

    /// A read found nothing: the armed wait is to report readability. `start` is called
    /// with the callback to hand the socket's readability wait (at once, so that it may be
    /// the transport's async_wait_next_bytes), unless one is armed.
    template <class Start>
    void watch(Start&& start) {
        readable_ = false;
        if (armed_) return;
        armed_ = true;
        start([self = events_ptr{this}](const boost::system::error_code&) {
            self->armed_ = false;
            // Readable, closed, failed or cancelled (close_when_idle): the next read says
            // which.
            self->readable_ = true;
            self->complete({}, false);
        });
    }

    /// A message was queued for the connection, or it must stop waiting: completes the
    /// wait. Never runs the waiter inline (it is posted).
    void wake() noexcept {
        woken_ = true;
        complete({}, false);
    }
    /// Whether a wake came since the last call.
    bool take_woken() noexcept { return std::exchange(woken_, false); }

    /// Calls `call(target)` on the connection's thread once what is queued there now has
    /// run (posted: never inline), unless cancel_deferred() comes first. At most one is
    /// pending: another defer() before it ran only replaces the call. Throws
    /// std::bad_alloc.
    using deferred_call = void (*)(void*) noexcept;
    void defer(deferred_call call, void* target);
    /// The deferred call is not to run (its target is going away, or did the work).
    void cancel_deferred() noexcept { deferred_target_ = nullptr; }

    /// Waits for readability, a wake, or cancellation (operation_aborted). Completes at once
    /// when the socket may be readable already.
    template <class Token>
    auto async_wait(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) {
                waiter_.emplace(std::move(handler));
                if (readable_) {
                    complete({}, false);
                    return;
                }
                // The type-erased handler forwards the coroutine's cancellation to a slot of
                // its own: that one is this operation's to fill (the coroutine's slot holds
                // the forwarding).
                auto slot = boost::asio::get_associated_cancellation_slot(*waiter_);
                if (slot.is_connected()) {
                    slot_ = slot;
                    slot.assign([self = events_ptr{this}](boost::asio::cancellation_type) {
                        self->complete(boost::asio::error::operation_aborted, true);
                    });
                }
            },
            token);
    }

  private:
    /// Posts the waiter's completion. `from_slot`: called by the slot's own handler, which
    /// must not be cleared while it runs (the coroutine's next operation replaces it).
    void complete(boost::system::error_code ec, bool from_slot) noexcept;

    boost::asio::io_context& io_;
    // (In an optional: Boost 1.81's any_completion_handler cannot be move-assigned.)
    std::optional<boost::asio::any_completion_handler<void(boost::system::error_code)>> waiter_;
    boost::asio::cancellation_slot slot_;
    deferred_call deferred_ = nullptr;
    void* deferred_target_ = nullptr;
    bool deferred_posted_ = false;
    bool readable_ = true;  ///< unknown until a read says otherwise
    bool armed_ = false;
    bool woken_ = false;
};

}  // namespace plugd
