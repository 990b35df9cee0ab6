// next_bytes_wait: waiting for a socket's next bytes after a read found none, without the
// system call Asio's async_wait makes every time.
//
// Asio registers a socket with epoll once, edge-triggered for input. A read operation that
// finds nothing (async_read_some) just queues itself until the next edge. A wait
// (async_wait) cannot try first, so Asio starts it without trying and re-arms the
// descriptor with epoll_ctl(EPOLL_CTL_MOD): one system call per wait. plugd reads
// without waiting and waits without a buffer (an idle connection holds none), so it waits
// as often as it reads: with a client that sends a request at a time, or a pipelining one
// the server outruns, that epoll_ctl was about one system call in four and 12% of the
// server's time (perf, bench/compare.sh pipelined).
//
// The wait here is a reactor operation of its own, started as a read is (it may be tried at
// once): tried at once it says "not yet", and it completes when the reactor reports the
// next edge, as a read would. That is correct only right after a read (or a peek) found
// nothing, with no turn of the event loop in between: bytes that came before that read
// would raise no edge. Every caller is such a place: the serving loop, a parked
// connection (after a peek), a raw connection's and a WebSocket session's reads.
//
// It relies on Asio 1.81's epoll reactor (boost/asio/detail), which Debian 12 ships; any
// other Boost, or another reactor, gets async_wait.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/version.hpp>

#include <utility>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_DISABLE_EPOLL)
#define PLUGD_NEXT_BYTES_WAIT_ON_REACTOR 1
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#endif

namespace plugd {

/// The reactor of one event loop, looked up once (a shard's): what next-bytes waits on its
/// sockets queue on.
class readiness_source {
  public:
    explicit readiness_source(boost::asio::io_context& io)
#ifdef PLUGD_NEXT_BYTES_WAIT_ON_REACTOR
        : reactor_{&boost::asio::use_service<boost::asio::detail::reactor>(io)}
#endif
    {
        (void)io;
    }

#ifdef PLUGD_NEXT_BYTES_WAIT_ON_REACTOR
    boost::asio::detail::reactor& reactor() const noexcept {
        return *reactor_;
    }

  private:
    boost::asio::detail::reactor* reactor_;
#endif
};

#ifdef PLUGD_NEXT_BYTES_WAIT_ON_REACTOR
namespace next_bytes_detail {

namespace ad = boost::asio::detail;

// The operation: a reactive_wait_op whose first, speculative, try says "not yet".
template <class Handler, class IoExecutor>
class wait_op : public ad::reactor_op {
  public:
    BOOST_ASIO_DEFINE_HANDLER_PTR(wait_op);

    wait_op(Handler& handler, const IoExecutor& io_ex)
        : reactor_op{boost::system::error_code{}, &wait_op::do_perform, &wait_op::do_complete},
          handler_{std::move(handler)},
          work_{handler_, io_ex} {}

    bool starting = true;  ///< inside start_op: a try now would be a wait that never waits

    static status do_perform(reactor_op* base) {
        return static_cast<wait_op*>(base)->starting ? not_done : done;
    }

    static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&,
                            std::size_t) {
        // As Asio's reactive_wait_op: the handler leaves the operation's memory before the
        // upcall, so that it can start the next operation in it.
        auto* o = static_cast<wait_op*>(base);
        ptr p = {ad::addressof(o->handler_), o, o};
        ad::handler_work<Handler, IoExecutor> w{std::move(o->work_)};
        ad::binder1<Handler, boost::system::error_code> handler{o->handler_, o->ec_};
        p.h = ad::addressof(handler.handler_);
        p.reset();
        if (owner) {
            ad::fenced_block b{ad::fenced_block::half};
            w.complete(handler, handler.handler_);
        }
    }

  private:
    Handler handler_;
    ad::handler_work<Handler, IoExecutor> work_;
};

// Per-operation cancellation, as Asio's own socket operations have it.
class wait_cancellation {
  public:
    wait_cancellation(ad::reactor& r, ad::reactor::per_descriptor_data& data, int fd) noexcept
        : reactor_{&r}, data_{&data}, fd_{fd} {}
    void operator()(boost::asio::cancellation_type_t type) {
        using boost::asio::cancellation_type;
        if (!!(type & (cancellation_type::terminal | cancellation_type::partial |
                       cancellation_type::total)))
            reactor_->cancel_ops_by_key(fd_, *data_, ad::reactor::read_op, this);
    }

  private:
    ad::reactor* reactor_;
    ad::reactor::per_descriptor_data* data_;
    int fd_;
};

// The socket's implementation (descriptor, reactor registration), which basic_socket keeps
// protected.
template <class Socket>
struct implementation_of : Socket {
    static auto& get(Socket& s) noexcept {
        return (s.*&implementation_of::impl_).get_implementation();
    }
};

}  // namespace next_bytes_detail
#endif

/// Completes (error_code) when `socket` has bytes, end of input or an error to read, or
/// with operation_aborted when cancelled. Call it only right after a read or a peek on
/// `socket` found nothing, before the event loop turns (see above), on the one thread that
/// runs the socket's io_context (a shard's). `source` is that io_context's reactor.
template <class Protocol, class Token>
auto async_wait_next_bytes(
    const readiness_source& source,
    boost::asio::basic_stream_socket<Protocol, boost::asio::io_context::executor_type>& socket,
    Token&& token) {
#ifdef PLUGD_NEXT_BYTES_WAIT_ON_REACTOR
    using socket_type =
        boost::asio::basic_stream_socket<Protocol, boost::asio::io_context::executor_type>;
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [&source, &socket](auto handler) {
            namespace ad = boost::asio::detail;
            using op = next_bytes_detail::wait_op<decltype(handler),
                                                  boost::asio::io_context::executor_type>;
            auto& impl = next_bytes_detail::implementation_of<socket_type>::get(socket);
            ad::reactor& reactor = source.reactor();
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            typename op::ptr p = {ad::addressof(handler), op::ptr::allocate(handler), nullptr};
            p.p = new (p.v) op{handler, socket.get_executor()};
            if (slot.is_connected()) {
                p.p->cancellation_key_ =
                    &slot.template emplace<next_bytes_detail::wait_cancellation>(
                        reactor, impl.reactor_data_, impl.socket_);
            }
            op* started = p.p;
            // The socket is non-blocking already (client_transport::prepare): no
            // set_internal_non_blocking here, which is what Asio's start_op adds.
            reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, started, false,
                             true);
            // Single-threaded loop: nothing runs the operation before this line.
            started->starting = false;
            p.v = p.p = nullptr;
        },
        token);
#else
    (void)source;
    return socket.async_wait(boost::asio::socket_base::wait_read, std::forward<Token>(token));
#endif
}

}  // namespace plugd
