// Topics in the core: a board's logs and cursors (order, except, the bound and its
// policies, references given back, memory), and the hub's publish from many threads at once,
// one post per interested thread.
#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "host/host.hpp"
#include "host/topic_board.hpp"
#include "host/topic_directory.hpp"
#include "host/topic_hub.hpp"
#include "serving/buffered_connection.hpp"

using namespace plugd;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

limits with_queue(std::size_t most, slow_subscriber_policy policy) {
    limits l;
    l.max_queued_messages = most;
    l.slow_subscriber = policy;
    return l;
}

const limits roomy = with_queue(1'000'000, slow_subscriber_policy::close);

// A subscriber that only records what the topics tell it.
struct recorder final : subscriber_endpoint {
    explicit recorder(topic_board& b, const limits& l = roomy)
        : subscriber_endpoint{b.index(), l}, board{b} {}
    ~recorder() { board.leave(*this); }

    void wake() noexcept override { ++wakes; }
    void fell_behind(slow_subscriber_policy p) noexcept override { behind.push_back(p); }

    // Every message queued for it now, moved past one by one: "topic=payload".
    std::vector<std::string> drain() {
        std::vector<std::string> got;
        board.release(*this);
        while (const topic_message* m = board.take(*this)) {
            got.push_back(std::string{m->topic()} + "=" + std::string{m->payload()});
            board.release(*this);
        }
        return got;
    }

    topic_board& board;
    int wakes = 0;
    std::vector<slow_subscriber_policy> behind;
};

message_ref message(std::string_view topic, std::string_view payload, std::uint64_t origin = 0) {
    return topic_message::make(topic, payload, message_type::text, origin);
}

using strings = std::vector<std::string>;

}  // namespace

TEST_CASE("topics: a subscriber gets its topics' messages in the order they reached its thread") {
    topic_directory directory{1};
    topic_board board{0, directory};
    recorder both{board}, only_x{board};
    board.subscribe(both, "x");
    board.subscribe(both, "y");
    board.subscribe(both, "x");  // again: nothing changes
    board.subscribe(only_x, "x");
    board.append(message("x", "1"));
    board.append(message("y", "2"));
    board.append(message("z", "nobody"));  // no subscriber here: dropped
    board.append(message("x", "3"));
    CHECK(both.drain() == strings{"x=1", "y=2", "x=3"});
    CHECK(only_x.drain() == strings{"x=1", "x=3"});
    CHECK(board.queued("x") == 0);
    CHECK(board.queued("y") == 0);
}

TEST_CASE("topics: publish's except skips the sender, also when it is behind") {
    topic_directory directory{1};
    topic_board board{0, directory};
    recorder sender{board}, other{board};
    board.subscribe(sender, "room");
    board.subscribe(other, "room");
    REQUIRE(sender.serial != 0);
    REQUIRE(sender.serial != other.serial);
    board.append(message("room", "mine", sender.serial));
    CHECK(sender.drain().empty());
    CHECK(other.drain() == strings{"room=mine"});
    // Behind: its own message between two others is passed over, not delivered.
    board.append(message("room", "a", other.serial));
    board.append(message("room", "mine again", sender.serial));
    board.append(message("room", "b", other.serial));
    CHECK(sender.drain() == strings{"room=a", "room=b"});
    CHECK(other.drain() == strings{"room=mine again"});
    CHECK(board.queued("room") == 0);
}

TEST_CASE("topics: only a waiting subscriber is woken, once per wait") {
    topic_directory directory{1};
    topic_board board{0, directory};
    recorder r{board};
    board.subscribe(r, "t");
    board.append(message("t", "1"));
    CHECK(r.wakes == 0);  // not waiting: next() finds it when it looks
    r.waiting = true;
    board.append(message("t", "2"));
    board.append(message("t", "3"));
    CHECK(r.wakes == 1);
    CHECK_FALSE(r.waiting);
    CHECK(r.drain() == strings{"t=1", "t=2", "t=3"});
}

TEST_CASE("topics: max_queued_messages may be queued, one more closes the subscriber (close)") {
    topic_directory directory{1};
    topic_board board{0, directory};
    const limits three = with_queue(3, slow_subscriber_policy::close);
    recorder slow{board, three}, fast{board};
    board.subscribe(slow, "t");
    board.subscribe(slow, "other");
    board.subscribe(fast, "t");
    for (int i = 1; i <= 3; ++i) board.append(message("t", std::to_string(i)));
    CHECK(slow.behind.empty());
    CHECK(fast.drain() == strings{"t=1", "t=2", "t=3"});
    board.append(message("t", "4"));  // the slow one's 4th
    REQUIRE(slow.behind.size() == 1);
    CHECK(slow.behind[0] == slow_subscriber_policy::close);
    CHECK(slow.subscriptions.empty());  // every topic, not only this one
    CHECK(board.queued("t") == 1);      // what the fast one has not taken yet
    CHECK(fast.drain() == strings{"t=4"});
    CHECK(board.queued("t") == 0);
    CHECK(board.topics() == 1);  // "other" had no one else
    board.append(message("t", "5"));
    CHECK(slow.behind.size() == 1);
    CHECK(slow.drain().empty());
}

TEST_CASE("topics: the message next() returned counts as queued until the next call") {
    topic_directory directory{1};
    topic_board board{0, directory};
    const limits two = with_queue(2, slow_subscriber_policy::close);
    recorder r{board, two};
    board.subscribe(r, "t");
    board.append(message("t", "1"));
    const topic_message* held = board.take(r);  // next() returned it; the plugin works on it
    REQUIRE(held);
    board.append(message("t", "2"));
    CHECK(r.behind.empty());
    board.append(message("t", "3"));
    REQUIRE(r.behind.size() == 1);
    // Closed while the plugin still reads the event: its bytes stay until the next call.
    CHECK(held->payload() == "1");
    CHECK(r.kept.get() == held);
    board.release(r);
    CHECK(r.kept == nullptr);
}

TEST_CASE("topics: past max_queued_messages, unsubscribe ends only that topic's subscription") {
    topic_directory directory{1};
    topic_board board{0, directory};
    const limits two = with_queue(2, slow_subscriber_policy::unsubscribe);
    recorder r{board, two};
    board.subscribe(r, "busy");
    board.subscribe(r, "quiet");
    board.append(message("quiet", "q"));
    for (int i = 1; i <= 3; ++i) board.append(message("busy", std::to_string(i)));
    REQUIRE(r.behind.size() == 1);
    CHECK(r.behind[0] == slow_subscriber_policy::unsubscribe);
    CHECK(r.drain() == strings{"quiet=q"});  // what busy had queued is given back
    CHECK(board.queued("busy") == 0);
    board.append(message("busy", "4"));
    board.append(message("quiet", "q2"));
    CHECK(r.drain() == strings{"quiet=q2"});
}

TEST_CASE("topics: every reference is given back once all subscribers moved past a message") {
    topic_directory directory{1};
    topic_board board{0, directory};
    const message_ref m = message("t", "shared");
    {
        recorder a{board}, b{board}, c{board};
        board.subscribe(a, "t");
        board.subscribe(b, "t");
        board.subscribe(c, "t");
        board.append(m);
        CHECK(m->references() == 2);  // ours and the board's one entry: not one per subscriber
        a.drain();
        b.drain();
        CHECK(m->references() == 2);
        c.drain();
        CHECK(m->references() == 1);
        board.append(m);
        board.take(a);                // a holds it as its event
        board.unsubscribe(a, "t");    // ... and ends its subscription meanwhile
        CHECK(m->references() == 3);  // the entry, and a's event
        b.drain();
        c.drain();
        CHECK(m->references() == 2);
        board.release(a);
        CHECK(m->references() == 1);
        board.append(m);  // then they leave with it queued
    }
    CHECK(m->references() == 1);
    CHECK(board.topics() == 0);
    CHECK(directory.topics() == 0);
}

TEST_CASE("topics: a log whose subscribers keep up stays a few slots, one that lags is bounded") {
    topic_directory directory{1};
    topic_board board{0, directory};
    const limits lag = with_queue(64, slow_subscriber_policy::unsubscribe);
    recorder quick{board}, slow{board, lag};
    board.subscribe(quick, "t");
    std::size_t most_slots = 0;
    for (int i = 0; i < 100'000; ++i) {
        board.append(message("t", "m"));
        quick.drain();
        most_slots = std::max(most_slots, board.slots("t"));
    }
    CHECK(most_slots <= 8);
    board.subscribe(slow, "t");
    std::size_t most_queued = 0;
    for (int i = 0; i < 100'000; ++i) {
        board.append(message("t", "m"));
        most_queued = std::max(most_queued, board.queued("t"));
        quick.drain();
        most_slots = std::max(most_slots, board.slots("t"));
    }
    CHECK(most_queued == 64);  // the slow one's 64, then its 65th cut it
    CHECK(slow.behind.size() == 1);
    CHECK(most_slots <= 128);
    CHECK(board.queued("t") == 0);
    // An idle subscription is one small node; an idle topic's log holds no slots.
    CHECK(sizeof(subscription) <= 64);
    CHECK(board.slots("t") <= 8);
}

TEST_CASE("topics: a board's topics are in the directory exactly while it has subscribers") {
    topic_directory directory{3};
    topic_board first{0, directory}, third{2, directory};
    recorder a{first}, b{third};
    first.subscribe(a, "t");
    third.subscribe(b, "t");
    std::vector<std::size_t> boards;
    directory.for_each_board("t", [&](std::size_t i) { boards.push_back(i); });
    CHECK(boards == std::vector<std::size_t>{0, 2});
    first.unsubscribe(a, "t");
    boards.clear();
    directory.for_each_board("t", [&](std::size_t i) { boards.push_back(i); });
    CHECK(boards == std::vector<std::size_t>{2});
    third.leave(b);
    CHECK(directory.topics() == 0);
}

namespace {

// Serving threads, each with its own event loop, as plugd's shards.
struct serving_threads {
    explicit serving_threads(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            ios.push_back(std::make_unique<asio::io_context>(1));
            guards.push_back(asio::make_work_guard(*ios.back()));
            loops.push_back(ios.back().get());
        }
    }
    void start() {
        for (std::size_t i = 0; i < ios.size(); ++i) {
            threads.emplace_back([this, i] {
                host::enter_serving_thread(*ios[i], i);
                ios[i]->run();
            });
        }
    }
    // Runs `f` on thread i and waits for it.
    template <class F>
    void on(std::size_t i, F f) {
        std::promise<void> done;
        asio::post(*ios[i], [&] {
            f();
            done.set_value();
        });
        REQUIRE(done.get_future().wait_for(10s) == std::future_status::ready);
    }
    ~serving_threads() {
        guards.clear();
        for (auto& io : ios) io->stop();
        for (auto& t : threads) t.join();
    }
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::vector<asio::io_context*> loops;
    std::vector<std::thread> threads;
};

// A subscriber on a serving thread that takes its messages as soon as it is woken, as a
// connection's next() does, and counts them by publisher, checking each one's order.
struct reader final : subscriber_endpoint {
    reader(topic_hub& h, std::size_t board, asio::io_context& io)
        : subscriber_endpoint{board, roomy}, topics{h}, loop{io} {}
    ~reader() { leave(); }

    void wake() noexcept override {
        asio::post(loop, [this] { take_all(); });
    }
    void fell_behind(slow_subscriber_policy) noexcept override { ++behind; }

    void take_all() {
        topic_board& b = topics.board_of(*this);
        b.release(*this);
        while (const topic_message* m = b.take(*this)) {
            // "<publisher>:<n>"
            const std::string_view p = m->payload();
            const auto colon = p.find(':');
            const std::string who{p.substr(0, colon)};
            const long n = std::stol(std::string{p.substr(colon + 1)});
            std::lock_guard lock{mutex};
            if (n <= last[who]) out_of_order = true;
            last[who] = n;
            ++received;
            b.release(*this);
        }
        waiting = true;
        changed.notify_all();
    }

    topic_hub& topics;
    asio::io_context& loop;
    std::mutex mutex;
    std::condition_variable changed;
    std::map<std::string, long> last;
    std::size_t received = 0;
    bool out_of_order = false;
    int behind = 0;
};

}  // namespace

TEST_CASE("topics: publishes from many threads at once reach every subscriber, each in order") {
    constexpr std::size_t threads = 3, readers_per_thread = 4, per_publisher = 2000;
    serving_threads serving{threads};
    topic_hub hub{serving.loops, 65536};
    serving.start();
    std::vector<std::unique_ptr<reader>> readers;
    for (std::size_t t = 0; t < threads; ++t) {
        for (std::size_t k = 0; k < readers_per_thread; ++k) {
            readers.push_back(std::make_unique<reader>(hub, t, *serving.ios[t]));
            reader& r = *readers.back();
            serving.on(t, [&] {
                hub.add_subscription(r, "room");
                r.waiting = true;
            });
        }
    }
    // Publishers: plain threads (posted to each board) and every serving thread (inline on
    // its own board, posted to the others), all at once; meanwhile subscribers come and go
    // on another topic, so boards write the directory while it is read.
    std::atomic<bool> go{false};
    std::vector<std::thread> publishers;
    for (int p = 0; p < 4; ++p) {
        publishers.emplace_back([&, p] {
            while (!go.load()) std::this_thread::yield();
            for (std::size_t n = 1; n <= per_publisher; ++n)
                hub.publish("room", "plain" + std::to_string(p) + ":" + std::to_string(n),
                            message_type::text, {});
        });
    }
    for (std::size_t t = 0; t < threads; ++t) {
        asio::post(*serving.ios[t], [&, t] {
            for (std::size_t n = 1; n <= per_publisher; ++n)
                hub.publish("room", "serving" + std::to_string(t) + ":" + std::to_string(n),
                            message_type::text, {});
        });
    }
    std::thread churn{[&] {
        while (!go.load()) std::this_thread::yield();
        for (int round = 0; round < 200; ++round) {
            const std::size_t t = static_cast<std::size_t>(round) % threads;
            reader passerby{hub, t, *serving.ios[t]};
            serving.on(t, [&] { hub.add_subscription(passerby, "hall"); });
            hub.publish("hall", "x:1", message_type::text, {});
            serving.on(t, [&] { passerby.topics.leave(passerby); });
        }
    }};
    go = true;
    for (auto& p : publishers) p.join();
    churn.join();
    const std::size_t expected = (4 + threads) * per_publisher;
    for (auto& r : readers) {
        std::unique_lock lock{r->mutex};
        CHECK_MESSAGE(r->changed.wait_for(lock, 30s, [&] { return r->received >= expected; }),
                      "received " << r->received << " of " << expected);
        CHECK(r->received == expected);
        CHECK_FALSE(r->out_of_order);
        CHECK(r->behind == 0);
    }
    // They leave on their own threads.
    for (std::size_t i = 0; i < readers.size(); ++i)
        serving.on(i / readers_per_thread, [&] { readers[i].reset(); });
    CHECK(hub.directory().topics() == 0);
}

TEST_CASE(
    "topics: a publish posts once to each thread with subscribers, never once per subscriber") {
    serving_threads serving{3};  // not running: the test counts what is queued on each
    topic_hub hub{serving.loops, 65536};
    std::vector<std::unique_ptr<reader>> readers;
    for (int k = 0; k < 100; ++k)
        readers.push_back(std::make_unique<reader>(hub, 0, *serving.ios[0]));
    readers.push_back(std::make_unique<reader>(hub, 1, *serving.ios[1]));
    for (auto& r : readers) hub.add_subscription(*r, "t");
    hub.publish("t", "a:1", message_type::text, {});  // from a thread that serves nothing
    CHECK(serving.ios[0]->poll() == 1);
    CHECK(serving.ios[1]->poll() == 1);
    CHECK(serving.ios[2]->poll() == 0);
    for (auto& r : readers) {
        topic_board& b = hub.board_of(*r);
        const topic_message* m = b.take(*r);
        REQUIRE(m);
        CHECK(m->payload() == "a:1");
        b.release(*r);
        CHECK(b.take(*r) == nullptr);
    }
    CHECK(hub.other_publishes() == 1);
}

namespace {

// A connection of the core's kind, as serve() gets one, that never receives anything.
struct quiet_connection final : buffered_connection {
    explicit quiet_connection(std::size_t board) : buffered_connection{board, roomy} {}
    task<void> write(std::string_view) override { co_return; }
    void recycle() noexcept override {}
    void close() noexcept override {}
    std::string_view peer() const noexcept override { return "127.0.0.1:1"; }
    std::string_view listener() const noexcept override { return "test"; }

  protected:
    task<bool> fill(std::string&, bool) override { co_return false; }
    task<arrival> receive(std::string&, bool, bool) override { co_return arrival::client_closed; }
    std::size_t max_read_bytes() const noexcept override { return 100; }
};

}  // namespace

TEST_CASE("topics: subscribe and except belong to the connection's thread, sizes are checked") {
    serving_threads serving{2};
    topic_hub hub{serving.loops, 100};
    serving.start();
    auto c = std::make_unique<quiet_connection>(0);
    CHECK_THROWS_AS(hub.subscribe(*c, "t"), std::logic_error);  // from the test's thread
    serving.on(1, [&] { CHECK_THROWS_AS(hub.subscribe(*c, "t"), std::logic_error); });
    serving.on(0, [&] {
        CHECK_NOTHROW(hub.subscribe(*c, "t"));
        CHECK_THROWS_AS(hub.subscribe(*c, ""), std::invalid_argument);
        CHECK_THROWS_AS(hub.subscribe(*c, std::string(257, 't')), std::invalid_argument);
        CHECK_THROWS_AS(hub.subscribe(subscriber{}, "t"), std::invalid_argument);
        CHECK_NOTHROW(hub.publish("t", "from itself", message_type::text, *c));
        CHECK_THROWS_AS(hub.publish("t", std::string(101, 'x'), message_type::text, {}),
                        std::length_error);
        CHECK_NOTHROW(hub.publish("t", std::string(100, 'x'), message_type::text, {}));
    });
    CHECK_THROWS_AS(hub.publish("t", "m", message_type::text, *c), std::logic_error);
    CHECK_THROWS_AS(hub.unsubscribe(*c, "t"), std::logic_error);
    serving.on(0, [&] {
        topic_board& b = hub.board_of(*c);
        const topic_message* m = b.take(*c);  // its own message was passed over
        REQUIRE(m);
        CHECK(m->payload() == std::string(100, 'x'));
        b.release(*c);
        hub.unsubscribe(*c, "t");
        c.reset();
    });
    CHECK(hub.directory().topics() == 0);
}
