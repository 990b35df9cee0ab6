// topic_hub: subscribe on the subscriber's thread; publish from anywhere, one post per board.
#include "host/topic_hub.hpp"

#include <boost/asio/post.hpp>

#include <stdexcept>
#include <string>

#include "framing/utf8_validator.hpp"
#include "host/host.hpp"
#include "host/topic_bridge.hpp"
#include "log.hpp"

namespace plugd {
namespace {

constexpr std::size_t max_topic_bytes = topic_hub::max_topic_bytes;

void check_topic(std::string_view topic, const char* call) {
    if (topic.empty() || topic.size() > max_topic_bytes) {
        throw std::invalid_argument(std::string{"topics::"} + call + ": a topic is 1 to " +
                                    std::to_string(max_topic_bytes) + " bytes, this one is " +
                                    std::to_string(topic.size()));
    }
}

// A delivery that could not be queued (out of memory) is lost for that thread's
// subscribers: said once per occurrence, as nothing else would show it.
void lost(const topic_message& m, std::size_t board) noexcept {
    try {
        log::error("topics: a message to \"" + std::string{m.topic()} +
                   "\" could not be queued for the subscribers of thread " + std::to_string(board) +
                   " (out of memory): they miss it");
    } catch (...) {
    }
}

}  // namespace

void subscriber_endpoint::leave() noexcept {
    if (hub) hub->leave(*this);
}

topic_hub::topic_hub(std::vector<boost::asio::io_context*> loops, std::size_t max_message_bytes)
    : loops_{std::move(loops)},
      max_message_bytes_{max_message_bytes},
      directory_{loops_.size()},
      own_counters_{std::make_unique<std::uint64_t[]>(loops_.size() + 1)},
      publishes_(loops_.size()),
      other_publishes_{&own_counters_[loops_.size()]} {
    boards_.reserve(loops_.size());
    for (std::size_t i = 0; i < loops_.size(); ++i) {
        boards_.push_back(std::make_unique<topic_board>(i, directory_));
        publishes_[i] = &own_counters_[i];
    }
}

topic_hub::~topic_hub() = default;

void topic_hub::count_publishes_in(std::size_t board, std::uint64_t* counter) noexcept {
    publishes_[board] = counter;
}

void topic_hub::count_other_publishes_in(std::uint64_t* counter) noexcept {
    other_publishes_ = counter;
}

std::uint64_t topic_hub::other_publishes() const noexcept {
    return std::atomic_ref<std::uint64_t>{*other_publishes_}.load(std::memory_order_relaxed);
}

subscriber_endpoint& topic_hub::endpoint_of(subscriber who, const char* call) const {
    subscriber_endpoint* e = nullptr;
    if (who.is_connection()) {
        e = dynamic_cast<subscriber_endpoint*>(static_cast<connection*>(who.target()));
    } else if (who.is_session()) {
        e = dynamic_cast<subscriber_endpoint*>(static_cast<session*>(who.target()));
    } else {
        throw std::invalid_argument(std::string{"topics::"} + call +
                                    ": the subscriber is empty; pass the connection that serve() "
                                    "was given, or the session that serve_session() was given");
    }
    if (!e || e->board() >= boards_.size()) {
        throw std::invalid_argument(std::string{"topics::"} + call +
                                    ": only a connection plugd handed to serve(), or a session it "
                                    "handed to serve_session(), can subscribe");
    }
    return *e;
}

namespace {

// The board of the calling thread in `loops`, or -1 off the serving threads.
std::ptrdiff_t board_here(const std::vector<boost::asio::io_context*>& loops) noexcept {
    const std::ptrdiff_t i = host::serving_thread_index();
    if (i < 0 || static_cast<std::size_t>(i) >= loops.size() ||
        loops[static_cast<std::size_t>(i)] != host::this_serving_loop())
        return -1;
    return i;
}

void check_thread(const subscriber_endpoint& e, const std::vector<boost::asio::io_context*>& loops,
                  const char* call) {
    if (board_here(loops) != static_cast<std::ptrdiff_t>(e.board())) {
        throw std::logic_error(std::string{"topics::"} + call +
                               ": called off the connection's own thread; call it from the "
                               "connection's serve()");
    }
}

}  // namespace

void topic_hub::subscribe(subscriber who, std::string_view topic) {
    check_topic(topic, "subscribe");
    subscriber_endpoint& e = endpoint_of(who, "subscribe");
    check_thread(e, loops_, "subscribe");
    add_subscription(e, topic);
}

void topic_hub::unsubscribe(subscriber who, std::string_view topic) {
    subscriber_endpoint& e = endpoint_of(who, "unsubscribe");
    check_thread(e, loops_, "unsubscribe");
    remove_subscription(e, topic);
}

void topic_hub::add_subscription(subscriber_endpoint& who, std::string_view topic) {
    who.hub = this;
    boards_[who.board()]->subscribe(who, topic);
}

void topic_hub::remove_subscription(subscriber_endpoint& who, std::string_view topic) noexcept {
    boards_[who.board()]->unsubscribe(who, topic);
}

void topic_hub::leave(subscriber_endpoint& who) noexcept {
    boards_[who.board()]->leave(who);
}

void topic_hub::publish(std::string_view topic, std::string_view message, message_type type,
                        subscriber except) {
    check_topic(topic, "publish");
    if (message.size() > max_message_bytes_) {
        throw std::length_error("topics::publish: a message of " + std::to_string(message.size()) +
                                " bytes to \"" + std::string{topic} +
                                "\" is above topics.max_message_bytes (" +
                                std::to_string(max_message_bytes_) +
                                "); send less, or raise /topics/max_message_bytes in server.json");
    }
    // A WebSocket client would close on text that is not UTF-8: refuse it here, where the
    // publisher learns of it, rather than at every subscriber.
    if (type == message_type::text && !valid_utf8(message)) {
        throw std::invalid_argument("topics::publish: a text message to \"" + std::string{topic} +
                                    "\" is not UTF-8; publish it as message_type::binary");
    }
    const std::ptrdiff_t here = board_here(loops_);
    std::uint64_t origin = 0;
    if (except.target()) {
        const subscriber_endpoint& e = endpoint_of(except, "publish");
        check_thread(e, loops_, "publish (except)");
        origin = e.serial;  // 0 while it has never subscribed: it receives nothing anyway
    }
    if (here >= 0) {
        ++*publishes_[static_cast<std::size_t>(here)];
    } else {
        std::atomic_ref<std::uint64_t>{*other_publishes_}.fetch_add(1, std::memory_order_relaxed);
    }
    if (stopped_.load(std::memory_order_relaxed)) return;
    message_ref m = topic_message::make(topic, message, type, origin);
    deliver_from(m, here);
    // Local subscribers never wait for Redis: the bridge only queues it.
    if (bridge_) bridge_->send(std::move(m));
}

void topic_hub::deliver(message_ref m) {
    if (stopped_.load(std::memory_order_relaxed)) return;
    deliver_from(m, board_here(loops_));
}

void topic_hub::deliver_from(const message_ref& m, std::ptrdiff_t here) {
    bool here_too = false;
    directory_.for_each_board(m->topic(), [&](std::size_t b) {
        if (static_cast<std::ptrdiff_t>(b) == here) {
            here_too = true;
            return;
        }
        boost::asio::post(*loops_[b], [board = boards_[b].get(), m] {
            try {
                board->append(m);
            } catch (...) {
                lost(*m, board->index());
            }
        });
    });
    if (here_too) boards_[static_cast<std::size_t>(here)]->append(m);
}

}  // namespace plugd
