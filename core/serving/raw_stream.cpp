// raw_stream: the socket of a `raw` connection, read and written under its listener's limits.
#include "serving/raw_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/system_error.hpp>

#include <stdexcept>
#include <tuple>

#include "log.hpp"
#include "serving/connection.hpp"

namespace plugd {
namespace {

constexpr auto as_tuple = asio::as_tuple(asio::deferred);
using phase = client_connection::phase_kind;

}  // namespace

raw_stream::raw_stream(client_connection& c) noexcept
    : buffered_connection{c.owner.index(), c.via->spec.limits}, c_{c} {}

raw_stream::~raw_stream() = default;

std::optional<buffered_connection::arrival> raw_stream::take_arrived(std::string& buffer,
                                                                     bool mid_message) {
    check_open();
    // The server stops, the listener was removed, or the client was idle too long:
    // the plugin sees the end of input and returns.
    if (c_.closing || c_.via->closing) {
        c_.begin_phase(phase::handling);  // what the plugin does next is timed as work
        return arrival::server_closed;
    }
    // Bytes the connection read past a protocol switch's request are the stream's
    // first, as if read now.
    if (!c_.input.empty()) {
        const std::string_view early = c_.input.view();
        if (!mid_message) c_.begin_phase(phase::handling);
        buffer.append(early);
        bytes_in_ += early.size();
        c_.input.consume(early.size());
        c_.input.release_if_empty(c_.owner.buffers());
        return arrival::bytes;
    }
    // The rest of a message is timed from its first wait, across reads (entering the
    // phase again would restart its clock); a new one from each wait.
    if (!mid_message) {
        c_.begin_phase(phase::waiting);
    } else if (c_.phase != phase::receiving) {
        c_.begin_phase(phase::receiving);
    }
    // With next()'s armed wait, a read is tried only once it reported readability.
    if (events_ && !events_->maybe_readable()) return std::nullopt;
    const auto scratch = c_.owner.scratch();
    boost::system::error_code ec;
    const std::size_t n = c_.wire.read_now(scratch, ec);
    if (!ec) {
        if (!mid_message) c_.begin_phase(phase::handling);
        if (auto* t = c_.via->traffic) t->bytes_in += n;
        bytes_in_ += n;
        buffer.append(scratch.data(), n);
        return arrival::bytes;
    }
    if (ec == asio::error::eof || ec == asio::error::connection_reset) {
        c_.begin_phase(phase::handling);
        return arrival::client_closed;
    }
    if (ec != asio::error::would_block) {
        throw boost::system::system_error(ec, "reading from " + c_.peer);
    }
    if (events_) {
        events_->watch([this](auto readable) {
            c_.wire.async_wait_next_bytes(c_.owner.readiness(), std::move(readable));
        });
    }
    return std::nullopt;
}

void raw_stream::begin_wait(const std::string& buffer) noexcept {
    // Between messages it may be closed to admit a new client at max_connections, as
    // an idle keep-alive connection is (the plugin then reads the end of input).
    if (buffer.empty()) c_.wait_idle();
    c_.in_read_wait = true;
}

void raw_stream::end_wait(boost::system::error_code ec) {
    c_.in_read_wait = false;
    c_.idle.unlink();
    if (ec && !(c_.closing || c_.via->closing)) {
        // Cancelled: a timeout or a drain that ran out (abort() says which).
        throw boost::system::system_error(ec, "reading from " + c_.peer);
    }
}

task<bool> raw_stream::fill(std::string& buffer, bool mid_message) {
    for (;;) {
        if (const auto got = take_arrived(buffer, mid_message)) co_return *got == arrival::bytes;
        begin_wait(buffer);
        boost::system::error_code ec;
        if (events_) {  // next() armed a wait already: share it
            std::tie(ec) = co_await events_->async_wait(as_tuple);
            events_->take_woken();  // a topic message waits for next()
        } else {
            std::tie(ec) = co_await c_.wire.async_wait_next_bytes(c_.owner.readiness(), as_tuple);
        }
        end_wait(ec);
    }
}

task<buffered_connection::arrival> raw_stream::receive(std::string& buffer, bool mid_message,
                                                       bool wakeable) {
    if (!events_) events_ = events_ptr{new client_events{c_.owner.io()}};
    for (;;) {
        if (const auto got = take_arrived(buffer, mid_message)) co_return *got;
        begin_wait(buffer);
        waiting = wakeable;  // the topic board wakes it
        auto [ec] = co_await events_->async_wait(as_tuple);
        waiting = false;
        end_wait(ec);
        if (events_->take_woken() && wakeable) co_return arrival::woken;
    }
}

void raw_stream::message_complete() noexcept {
    c_.begin_phase(phase::handling);
}

std::size_t raw_stream::max_read_bytes() const noexcept {
    return c_.limits().max_request_bytes;
}

void raw_stream::delivered() noexcept {
    if (auto* t = c_.via->traffic) ++t->topic_deliveries;
}

void raw_stream::slow_subscriber(slow_subscriber_policy policy) noexcept {
    c_.subscriber_fell_behind(policy);
}

task<void> raw_stream::write(std::string_view bytes) {
    check_open();
    c_.begin_phase(phase::writing);
    auto [ec, n] = co_await c_.wire.async_write(asio::buffer(bytes), as_tuple);
    if (auto* t = c_.via->traffic) t->bytes_out += n;
    bytes_out_ += n;
    c_.begin_phase(phase::handling);
    if (ec) throw boost::system::system_error(ec, "writing to " + c_.peer);
}

void raw_stream::close() noexcept {
    mark_closed();
    c_.closing = true;
    c_.wire.shutdown();
}

std::string_view raw_stream::peer() const noexcept {
    return c_.peer;
}

std::string_view raw_stream::listener() const noexcept {
    return c_.via->spec.name;
}

}  // namespace plugd
