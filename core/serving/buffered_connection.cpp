// buffered_connection: a connection's closed state, and next() over its buffer and topics.
#include "serving/buffered_connection.hpp"

#include <stdexcept>

#include "host/topic_hub.hpp"

namespace plugd {

buffered_connection::~buffered_connection() {
    leave();
}

void buffered_connection::check_open() const {
    if (closed_) {
        throw std::runtime_error("connection from " + std::string{peer()} +
                                 " used after close(); its serve() should return");
    }
}

std::string buffered_connection::describe() const {
    return "connection from " + std::string{peer()};
}

void buffered_connection::wake() noexcept {
    if (events_) events_->wake();
}

void buffered_connection::fell_behind(slow_subscriber_policy policy) noexcept {
    if (policy == slow_subscriber_policy::close) {
        cut_off_ = true;
        if (waiting) {
            waiting = false;
            wake();
        }
    }
    slow_subscriber(policy);
}

event buffered_connection::closed_event(std::uint16_t code, std::string_view reason) noexcept {
    event_ = {2, message_type::text, code, reason, {}};
    return event{&event_};
}

task<event> buffered_connection::next(std::string_view delimiter) {
    if (delimiter.empty()) throw std::invalid_argument("next: the delimiter is empty");
    check_open();
    // The plugin is done with the event returned last.
    if (hub) hub->board_of(*this).release(*this);
    const std::size_t limit = max_read_bytes();
    std::string& buffer = buffered();
    std::size_t searched = 0;
    for (;;) {
        if (cut_off_) {
            co_return closed_event(1008, "fell more than max_queued_messages behind on its topics");
        }
        const auto at = buffer.find(delimiter, searched);
        if ((at != std::string::npos && at + delimiter.size() > limit) ||
            (at == std::string::npos && buffer.size() >= limit)) {
            message_refused();
            throw std::length_error(describe() + ": more than " + std::to_string(limit) +
                                    " bytes without the delimiter (max_request_bytes)");
        }
        const bool whole = at != std::string::npos;
        // When a message of each kind is ready, they take turns.
        if (!whole || !client_turn_) {
            if (const topic_message* m = hub ? hub->board_of(*this).take(*this) : nullptr) {
                client_turn_ = true;
                event_ = {1, m->type(), 0, m->payload(), m->topic()};
                message_complete();
                delivered();
                co_return event{&event_};
            }
        }
        if (whole) {
            client_turn_ = false;
            message_.assign(buffer, 0, at);
            buffer.erase(0, at + delimiter.size());
            event_ = {0, message_type::text, 0, message_, {}};
            message_complete();
            co_return event{&event_};
        }
        // The delimiter may straddle what is buffered and what comes next.
        searched = buffer.size() >= delimiter.size() ? buffer.size() - delimiter.size() + 1 : 0;
        // (Awaited outside the switch: GCC 12 miscompiles a co_await in its condition.)
        const arrival got = co_await receive(buffer, !buffer.empty(), true);
        switch (got) {
            case arrival::bytes:
            case arrival::woken:
                break;
            case arrival::client_closed:
                co_return closed_event(1000, "closed by the client");
            case arrival::server_closed:
                co_return closed_event(1001, "closed by the server");
        }
    }
}

}  // namespace plugd
