// raw_stream: the socket of a `raw` connection, read and written under its listener's limits.
#include "serving/raw_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <stdexcept>

#include "serving/connection.hpp"

namespace plugd {
namespace {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);
using phase = client_connection::phase_kind;

}  // namespace

task<bool> raw_stream::fill(std::string& buffer, bool mid_message) {
    check_open();
    const auto scratch = c_.owner.scratch();
    for (;;) {
        // The server stops, the listener was removed, or the client was idle too long:
        // the plugin sees the end of input and returns.
        if (c_.closing || c_.via->closing) {
            c_.begin_phase(phase::handling);  // what the plugin does next is timed as work
            co_return false;
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
            co_return true;
        }
        // The rest of a message is timed from its first wait, across reads (entering the
        // phase again would restart its clock); a new one from each wait.
        if (!mid_message) {
            c_.begin_phase(phase::waiting);
        } else if (c_.phase != phase::receiving) {
            c_.begin_phase(phase::receiving);
        }
        boost::system::error_code ec;
        const std::size_t n = c_.wire.read_now(scratch, ec);
        if (!ec) {
            if (!mid_message) c_.begin_phase(phase::handling);
            if (auto* t = c_.via->traffic) t->bytes_in += n;
            bytes_in_ += n;
            buffer.append(scratch.data(), n);
            co_return true;
        }
        if (ec == asio::error::eof || ec == asio::error::connection_reset) {
            c_.begin_phase(phase::handling);
            co_return false;
        }
        if (ec != asio::error::would_block) {
            throw boost::system::system_error(ec, "reading from " + c_.peer);
        }
        // Between messages it may be closed to admit a new client at max_connections, as
        // an idle keep-alive connection is (the plugin then reads the end of input).
        if (buffer.empty()) c_.wait_idle();
        c_.in_read_wait = true;
        auto [wait_ec] = co_await c_.wire.async_wait_readable(as_tuple);
        c_.in_read_wait = false;
        c_.idle.unlink();
        if (wait_ec && !(c_.closing || c_.via->closing)) {
            // Cancelled: a timeout or a drain that ran out (abort() says which).
            throw boost::system::system_error(wait_ec, "reading from " + c_.peer);
        }
    }
}

void raw_stream::message_complete() noexcept {
    c_.begin_phase(phase::handling);
}

std::size_t raw_stream::max_read_bytes() const noexcept {
    return c_.limits().max_request_bytes;
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
