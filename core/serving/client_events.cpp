// client_events: completing a connection's one wait.
#include "serving/client_events.hpp"

#include <boost/asio/post.hpp>

namespace plugd {

void client_events::complete(boost::system::error_code ec, bool from_slot) noexcept {
    if (!waiter_) return;
    if (!from_slot && slot_.is_connected()) slot_.clear();
    slot_ = {};
    boost::asio::post(io_, [waiter = std::move(*waiter_), ec]() mutable { std::move(waiter)(ec); });
    waiter_.reset();
}

void client_events::defer(deferred_call call, void* target) {
    if (!deferred_posted_) {
        boost::asio::post(io_, [self = events_ptr{this}] {
            self->deferred_posted_ = false;
            if (void* t = std::exchange(self->deferred_target_, nullptr)) self->deferred_(t);
        });
        deferred_posted_ = true;
    }
    deferred_ = call;
    deferred_target_ = target;
}

}  // namespace plugd
