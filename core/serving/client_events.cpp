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

}  // namespace plugd
