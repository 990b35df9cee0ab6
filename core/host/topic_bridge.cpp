// topic_bridge: a subscriber and a publisher connection to Redis on one serving thread, each
// reconnecting with backoff; send() from any thread; echo suppression by instance id.
#include "host/topic_bridge.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "host/resp.hpp"
#include "host/topic_hub.hpp"
#include "log.hpp"

namespace plugd {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view magic = "plg1";
constexpr std::chrono::milliseconds first_backoff = 100ms;
constexpr std::chrono::milliseconds last_backoff = 5000ms;
constexpr std::chrono::milliseconds connect_timeout = 5000ms;
// Redis reads what it is sent at once: a write that cannot finish in this long means a
// Redis (or a path to it) that is gone without saying so.
constexpr std::chrono::milliseconds write_timeout = 10000ms;
// At most this many messages go into one write, so one write's buffer stays small however
// many are pending.
constexpr std::size_t batch_messages = 256;
constexpr std::size_t read_chunk = 16384;

void count(std::uint64_t& counter, std::uint64_t n = 1) noexcept {
    std::atomic_ref<std::uint64_t>{counter}.fetch_add(n, std::memory_order_relaxed);
}

// Runs `on_expiry` if `limit` passes while it exists: the operation that function cancels
// then completes with an error, and fired() tells that from any other failure. An expiry
// already queued when the operation ended is recognised and ignored. One thread only.
class watchdog {
  public:
    watchdog(asio::io_context& io, std::chrono::milliseconds limit, std::function<void()> on_expiry)
        : timer_{io, limit} {
        timer_.async_wait([armed = armed_, fired = fired_,
                           f = std::move(on_expiry)](const boost::system::error_code& ec) {
            if (ec || !*armed) return;
            *fired = true;
            f();
        });
    }
    ~watchdog() {
        *armed_ = false;
        timer_.cancel();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    bool fired() const noexcept { return *fired_; }

  private:
    asio::steady_timer timer_;
    std::shared_ptr<bool> armed_ = std::make_shared<bool>(true);
    std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
};

// Why a connection failed: what() is the reason the log line gives.
class link_failure : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The replies and pushes arriving on one connection, one whole value at a time.
class reply_stream {
  public:
    reply_stream(tcp::socket& socket, const resp::reader& reader) noexcept
        : socket_{socket}, reader_{reader} {}

    asio::awaitable<resp::value> next() {
        for (;;) {
            std::size_t consumed = 0;
            std::optional<resp::value> v;
            try {
                v = reader_.next(std::string_view{buffer_}.substr(start_), consumed);
            } catch (const resp::protocol_error& e) {
                throw link_failure(std::string{"Redis sent what plugd cannot read ("} + e.what() +
                                   ")");
            }
            if (v) {
                start_ += consumed;
                if (start_ == buffer_.size()) {
                    buffer_.clear();
                    start_ = 0;
                }
                co_return std::move(*v);
            }
            buffer_.erase(0, start_);
            start_ = 0;
            const std::size_t old = buffer_.size();
            buffer_.resize(old + read_chunk);
            const auto [ec, n] = co_await socket_.async_read_some(
                asio::buffer(buffer_.data() + old, read_chunk), as_tuple);
            buffer_.resize(old + n);
            if (ec == asio::error::eof) throw link_failure("Redis closed the connection");
            if (ec) throw link_failure("reading from Redis: " + ec.message());
        }
    }

  private:
    tcp::socket& socket_;
    const resp::reader& reader_;
    std::string buffer_;
    std::size_t start_ = 0;  ///< where the next value starts in buffer_
};

}  // namespace

// Everything the connections use, kept alive by their coroutines as well as by the bridge:
// whichever goes last frees it. All of it but the pending queue (its mutex) and `stopped_`
// is touched only on `loop_`'s thread.
class topic_bridge::link : public std::enable_shared_from_this<link> {
  public:
    link(const redis_settings& settings, std::size_t max_message_bytes, topic_hub& hub,
         asio::io_context& loop, instance_id id, topic_bridge_stats& stats)
        : settings_{settings},
          max_message_bytes_{max_message_bytes},
          hub_{hub},
          loop_{loop},
          id_{id},
          stats_{stats},
          where_{"Redis at " + settings.host + ":" + std::to_string(settings.port)},
          // A pmessage's largest part is the value: the tag and a message of the largest size.
          reader_{max_message_bytes + header_bytes + 1024},
          subscriber_{loop},
          publisher_{loop},
          wake_{loop},
          subscriber_pause_{loop},
          publisher_pause_{loop} {
        taking_.reserve(batch_messages);
        std::atomic_ref<std::uint64_t>{stats_.bridges}.store(1, std::memory_order_relaxed);
    }

    void start() {
        asio::co_spawn(loop_, keep_subscribed(shared_from_this()), asio::detached);
        asio::co_spawn(loop_, keep_publishing(shared_from_this()), asio::detached);
    }

    void send(message_ref m) {
        if (stopped_.load(std::memory_order_relaxed)) return;
        bool was_empty = false;
        {
            std::lock_guard lock{mutex_};
            if (pending_.size() >= settings_.max_pending) {
                count(stats_.dropped_pending_full);
                return;
            }
            was_empty = pending_.empty();
            pending_.push_back(std::move(m));
        }
        // The publisher waits only when it found the queue empty: one wake-up per fill.
        if (was_empty) asio::post(loop_, [self = shared_from_this()] { self->wake_.cancel(); });
    }

    void stop() {
        if (stopped_.exchange(true)) return;
        asio::post(loop_, [self = shared_from_this()] {
            self->stopping_ = true;
            boost::system::error_code ignored;
            self->subscriber_.close(ignored);
            self->publisher_.close(ignored);
            self->wake_.cancel();
            self->subscriber_pause_.cancel();
            self->publisher_pause_.cancel();
            self->set_ready(self->subscriber_ready_, false, {});
            self->set_ready(self->publisher_ready_, false, {});
        });
    }

  private:
    // One connection's life, again and again until stop(): `attempt` connects and serves it
    // until it fails; then a pause, 100 ms doubling to 5 s (back to 100 ms after a
    // connection that got ready).
    asio::awaitable<void> keep_connected(asio::awaitable<void> (link::*attempt)(),
                                         bool link::*ready, asio::steady_timer& pause) {
        auto backoff = first_backoff;
        for (bool first = true; !stopping_; first = false) {
            if (!first) count(stats_.reconnects);
            std::string failure;
            try {
                co_await (this->*attempt)();
            } catch (const std::exception& e) {
                failure = e.what();
            }
            const bool was_ready = this->*ready;
            set_ready(this->*ready, false, stopping_ ? std::string{} : failure);
            if (stopping_) break;
            if (was_ready) backoff = first_backoff;
            pause.expires_after(backoff);
            co_await pause.async_wait(as_tuple);
            backoff = std::min(backoff * 2, last_backoff);
        }
    }

    // `self` keeps the link alive while the coroutine runs.
    asio::awaitable<void> keep_subscribed([[maybe_unused]] std::shared_ptr<link> self) {
        co_await keep_connected(&link::subscribe, &link::subscriber_ready_, subscriber_pause_);
    }
    asio::awaitable<void> keep_publishing([[maybe_unused]] std::shared_ptr<link> self) {
        co_await keep_connected(&link::publish, &link::publisher_ready_, publisher_pause_);
    }

    // Resolves and connects `socket` within connect_timeout.
    asio::awaitable<void> connect(tcp::socket& socket) {
        socket = tcp::socket{loop_};
        tcp::resolver resolver{loop_};
        tcp::resolver::results_type endpoints;
        {
            watchdog w{loop_, connect_timeout, [&resolver] { resolver.cancel(); }};
            auto [ec, found] = co_await resolver.async_resolve(
                settings_.host, std::to_string(settings_.port), as_tuple);
            if (stopping_) throw link_failure("stopped");
            if (ec)
                throw link_failure("cannot resolve " + settings_.host + ": " +
                                   (w.fired() ? std::string{"timed out"} : ec.message()));
            endpoints = std::move(found);
        }
        watchdog w{loop_, connect_timeout, [&socket] {
                       boost::system::error_code ignored;
                       socket.close(ignored);
                   }};
        auto [ec, at] = co_await asio::async_connect(socket, endpoints, as_tuple);
        if (stopping_) throw link_failure("stopped");
        if (ec)
            throw link_failure("cannot connect: " +
                               (w.fired() ? std::string{"timed out after 5 s"} : ec.message()));
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay{true}, ignored);
        // A Redis that vanished without a reset (a host gone, a cable pulled) is noticed in
        // about 30 s by the subscriber, which otherwise only ever waits to read.
        socket.set_option(asio::socket_base::keep_alive{true}, ignored);
        const int idle = 15, interval = 5, probes = 3;
        ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval,
                     sizeof interval);
        ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    }

    asio::awaitable<void> write(tcp::socket& socket, const std::string& bytes) {
        watchdog w{loop_, write_timeout, [&socket] {
                       boost::system::error_code ignored;
                       socket.close(ignored);
                   }};
        const auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), as_tuple);
        // The connection is of no use now; closing it also ends a read waiting on it.
        if (ec) {
            boost::system::error_code ignored;
            socket.close(ignored);
        }
        if (ec)
            throw link_failure(w.fired() ? "a write to Redis did not finish within 10 s"
                                         : "writing to Redis: " + ec.message());
    }

    // Checks the reply to AUTH, the first one on a connection with a password.
    void check_auth(const resp::value& v) const {
        if (v.type == resp::value::kind::simple && v.text == "OK") return;
        throw link_failure("Redis refused the password in " + settings_.password_file.string() +
                           " (" + v.text +
                           "); put Redis's password (requirepass) on its first line");
    }

    // An error reply where none was expected: NOAUTH says what to do.
    [[noreturn]] void refused(const resp::value& v) const {
        if (v.text.starts_with("NOAUTH"))
            throw link_failure("Redis asks for a password (" + v.text +
                               "); name a file holding it in /topics/redis/password_file");
        throw link_failure("Redis answered with an error: " + v.text);
    }

    void append_auth(std::string& out) const {
        if (settings_.password.empty()) return;
        const std::string_view auth[] = {"AUTH", settings_.password};
        resp::append_command(out, auth);
    }

    // The subscriber connection: AUTH, PSUBSCRIBE <prefix>*, then every push until it fails.
    asio::awaitable<void> subscribe() {
        co_await connect(subscriber_);
        std::string out;
        append_auth(out);
        const std::string pattern = settings_.channel_prefix + "*";
        const std::string_view psubscribe[] = {"PSUBSCRIBE", pattern};
        resp::append_command(out, psubscribe);
        co_await write(subscriber_, out);
        reply_stream replies{subscriber_, reader_};
        if (!settings_.password.empty()) check_auth(co_await replies.next());
        for (;;) {
            const resp::value v = co_await replies.next();
            if (v.type == resp::value::kind::error) refused(v);
            if (v.type != resp::value::kind::array || v.items.empty()) continue;
            const std::string& push = v.items[0].text;
            if (push == "pmessage" && v.items.size() == 4) {
                on_message(v.items[2].text, v.items[3].text);
            } else if (push == "psubscribe") {
                set_ready(subscriber_ready_, true, {});
            }
        }
    }

    // A message on one of our channels: delivered here unless it is ours or unreadable.
    void on_message(std::string_view channel, std::string_view value) {
        const decoded d = decode_value(value, id_, max_message_bytes_);
        if (d.from == decoded::kind::ours) return;  // delivered here when it was published
        const bool ours = channel.starts_with(settings_.channel_prefix);
        const std::string_view topic =
            ours ? channel.substr(settings_.channel_prefix.size()) : std::string_view{};
        if (d.from == decoded::kind::malformed || topic.empty() ||
            topic.size() > topic_hub::max_topic_bytes) {
            count(stats_.dropped_malformed);
            return;
        }
        hub_.deliver(topic_message::make(topic, d.payload, d.type, 0));
        count(stats_.messages_in);
    }

    // The publisher connection: AUTH, then the pending messages as pipelined PUBLISHes while
    // their replies are read, until either side fails.
    asio::awaitable<void> publish() {
        co_await connect(publisher_);
        reply_stream replies{publisher_, reader_};
        if (!settings_.password.empty()) {
            std::string out;
            append_auth(out);
            co_await write(publisher_, out);
            check_auth(co_await replies.next());
        }
        set_ready(publisher_ready_, true, {});
        using namespace asio::experimental::awaitable_operators;
        // Each ends the other when it fails (see count_replies): both fail, and the first
        // one's reason is the one to log.
        std::exception_ptr failed;
        try {
            co_await (count_replies(replies) || write_pending());
        } catch (const asio::multiple_exceptions& e) {
            failed = e.first_exception();
        }
        if (failed) std::rethrow_exception(failed);
    }

    // Each PUBLISH is answered with the number of clients that received it: counted as sent,
    // not looked at. When the connection fails, the writer is woken to see it closed.
    asio::awaitable<void> count_replies(reply_stream& replies) {
        std::exception_ptr failed;
        try {
            for (;;) {
                const resp::value v = co_await replies.next();
                if (v.type == resp::value::kind::error) refused(v);
                if (v.type == resp::value::kind::integer) count(stats_.messages_out);
            }
        } catch (...) {
            failed = std::current_exception();
        }
        boost::system::error_code ignored;
        publisher_.close(ignored);
        wake_.cancel();
        std::rethrow_exception(failed);
    }

    asio::awaitable<void> write_pending() {
        std::string out, channel, value;
        for (;;) {
            {
                std::lock_guard lock{mutex_};
                const std::size_t n = std::min(pending_.size(), batch_messages);
                std::move(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n),
                          std::back_inserter(taking_));
                pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
            }
            if (taking_.empty()) {
                // send() cancels the wait when it queues into an empty queue.
                wake_.expires_at(asio::steady_timer::time_point::max());
                co_await wake_.async_wait(as_tuple);
                // Closed: stop(), or the reader saw the connection fail (its reason is the one
                // logged).
                if (stopping_ || !publisher_.is_open()) throw link_failure("stopped");
                continue;
            }
            out.clear();
            for (const message_ref& m : taking_) {
                channel.assign(settings_.channel_prefix).append(m->topic());
                value.clear();
                append_value(value, id_, *m);
                const std::string_view publish[] = {"PUBLISH", channel, value};
                resp::append_command(out, publish);
            }
            taking_.clear();  // the messages are in `out` now: their memory can go
            co_await write(publisher_, out);
            if (out.capacity() > (std::size_t{1} << 20)) std::string{}.swap(out);
        }
    }

    // Records that a connection is ready or not; logs the bridge going down (once, with
    // `failure`) and coming up. Up: both connections ready.
    void set_ready(bool& flag, bool ready, const std::string& failure) {
        flag = ready;
        const bool up = subscriber_ready_ && publisher_ready_;
        std::atomic_ref<std::uint64_t>{stats_.up}.store(up ? 1 : 0, std::memory_order_relaxed);
        if (up && !up_) {
            log::info("topics: bridge to " + where_ + " is up" +
                      (down_announced_ ? std::string{" again"} : std::string{}) + ": channels " +
                      settings_.channel_prefix + "*");
            down_announced_ = false;
        }
        up_ = up;
        if (!up && !failure.empty() && !down_announced_) {
            log::warn("topics: bridge to " + where_ + " is down: " + failure +
                      "; retrying every 0.1 to 5 s. Meanwhile messages published here wait "
                      "(up to /topics/redis/max_pending, " +
                      std::to_string(settings_.max_pending) +
                      ") and those of other processes are lost");
            down_announced_ = true;
        }
    }

    const redis_settings settings_;
    const std::size_t max_message_bytes_;
    topic_hub& hub_;
    asio::io_context& loop_;
    const instance_id id_;
    topic_bridge_stats& stats_;
    const std::string where_;
    const resp::reader reader_;

    std::mutex mutex_;                    ///< guards pending_ (send() runs on any thread)
    std::deque<message_ref> pending_;     ///< waiting for the publisher
    std::atomic<bool> stopped_{false};    ///< stop() was called: send() does nothing
    std::vector<message_ref> taking_;     ///< the publisher's batch being encoded
    tcp::socket subscriber_, publisher_;  ///< the current connections
    asio::steady_timer wake_;             ///< the publisher waits on it for a first message
    asio::steady_timer subscriber_pause_, publisher_pause_;  ///< backoff between attempts
    bool subscriber_ready_ = false;                          ///< PSUBSCRIBE confirmed
    bool publisher_ready_ = false;                           ///< connected (and authenticated)
    bool up_ = false;                                        ///< both, as last logged
    bool down_announced_ = false;  ///< the down line was logged since the bridge was last up
    bool stopping_ = false;        ///< stop() reached the loop
};

topic_bridge::topic_bridge(const redis_settings& settings, std::size_t max_message_bytes,
                           topic_hub& hub, boost::asio::io_context& loop, instance_id id,
                           topic_bridge_stats& stats)
    : link_{std::make_shared<link>(settings, max_message_bytes, hub, loop, id, stats)} {}

topic_bridge::~topic_bridge() {
    link_->stop();
}

void topic_bridge::start() {
    link_->start();
}

void topic_bridge::send(message_ref m) {
    link_->send(std::move(m));
}

void topic_bridge::stop() {
    link_->stop();
}

topic_bridge::instance_id topic_bridge::random_id() {
    instance_id id{};
    std::size_t filled = 0;
    while (filled < id.size()) {
        const ssize_t n = ::getrandom(id.data() + filled, id.size() - filled, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            throw std::system_error(errno, std::generic_category(),
                                    "topics: getrandom for the Redis bridge's instance id");
        filled += static_cast<std::size_t>(n);
    }
    return id;
}

void topic_bridge::append_value(std::string& out, const instance_id& id, const topic_message& m) {
    out.reserve(out.size() + header_bytes + m.payload().size());
    out += magic;
    out.append(reinterpret_cast<const char*>(id.data()), id.size());
    out += static_cast<char>(m.type());
    out += m.payload();
}

topic_bridge::decoded topic_bridge::decode_value(std::string_view value, const instance_id& id,
                                                 std::size_t max_bytes) noexcept {
    decoded d;
    if (value.size() < header_bytes || !value.starts_with(magic)) return d;
    if (std::memcmp(value.data() + magic.size(), id.data(), id.size()) == 0) {
        d.from = decoded::kind::ours;
        return d;
    }
    const auto type = static_cast<std::uint8_t>(value[magic.size() + id.size()]);
    if (type > static_cast<std::uint8_t>(message_type::binary)) return d;
    if (value.size() - header_bytes > max_bytes) return d;
    d.from = decoded::kind::foreign;
    d.type = static_cast<message_type>(type);
    d.payload = value.substr(header_bytes);
    return d;
}

}  // namespace plugd
