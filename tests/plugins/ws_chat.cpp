// ws_chat: WebSocket sessions for the tests. ws://host/room/echo answers every message with
// itself (same type); ws://host/room/close-NNNN closes at once with code NNNN;
// ws://host/room/lazy-NAME is a member of room NAME that, after each message it forwards,
// waits 30 s on a timer before its next next() (a send while the plugin waits on something
// else); any other
// ws://host/room/NAME is a chat room NAME whose messages reach the room's other clients
// tagged with the build ("v1:hi"), so that tests can tell which version relayed them. On a
// raw listener it is a line chat in room "lobby", tagged the same way.
#include <plugd/plugin.hpp>

#include <chrono>
#include <string>

#ifndef WS_CHAT_TAG
#define WS_CHAT_TAG "v1:"
#endif

class ws_chat final : public plugd::handler {
  public:
    explicit ws_chat(plugd::context& ctx) : ctx_{ctx}, topics_{ctx.topics()} {}

    plugd::task<void> serve_session(plugd::session& s) override {
        const std::string room{s.path_rest()};
        if (room == "echo") {
            while (auto ev = co_await s.next()) co_await s.send(ev.data(), ev.type());
            co_return;
        }
        if (room.rfind("close-", 0) == 0) {
            co_await s.close(static_cast<std::uint16_t>(std::stoi(room.substr(6))), "asked to");
            co_return;
        }
        const bool lazy = room.rfind("lazy-", 0) == 0;
        const std::string topic = "chat/" + (lazy ? room.substr(5) : room);
        topics_.subscribe(s, topic);
        while (auto ev = co_await s.next()) {
            if (ev.published()) {
                co_await s.forward(ev);
                if (lazy) co_await ctx_.sleep_for(std::chrono::seconds{30});
            } else {
                topics_.publish(topic, WS_CHAT_TAG + std::string{ev.data()}, ev.type(), s);
            }
        }
    }

    plugd::task<void> serve(plugd::connection& c) override {
        topics_.subscribe(c, "chat/lobby");
        while (auto ev = co_await c.next("\n")) {
            if (ev.published()) {
                co_await c.write(std::string{ev.data()} + "\n");
            } else {
                topics_.publish("chat/lobby", WS_CHAT_TAG + std::string{ev.data()}, ev.type(), c);
            }
        }
    }

  private:
    plugd::context& ctx_;
    plugd::topics& topics_;
};

PLUGD_PLUGIN(ws_chat)
