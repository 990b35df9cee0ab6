// chat: rooms of clients who hear each other. On an http listener with the route
// "/room/", a WebSocket client of ws://host/room/NAME is in room NAME: every message it
// sends reaches every other client of the room, unchanged. On a raw listener the same
// plugin is a line chat in room "lobby", together with the WebSocket clients of /room/lobby.
#include <plugd/plugin.hpp>

#include <string>

class chat final : public plugd::handler {
  public:
    explicit chat(plugd::context& ctx) : topics_{ctx.topics()} {}

    plugd::task<void> serve_session(plugd::session& s) override {
        const std::string room = "chat/" + std::string{s.path_rest()};
        topics_.subscribe(s, room);
        while (auto ev = co_await s.next()) {
            if (ev.published()) {
                co_await s.forward(ev);
            } else {
                topics_.publish(room, ev.data(), ev.type(), s);  // to everyone but s
            }
        }
    }

    plugd::task<void> serve(plugd::connection& c) override {
        topics_.subscribe(c, "chat/lobby");
        while (auto ev = co_await c.next("\n")) {
            if (ev.published()) {
                co_await c.write(std::string{ev.data()} + "\n");
            } else {
                topics_.publish("chat/lobby", ev.data(), ev.type(), c);
            }
        }
    }

  private:
    plugd::topics& topics_;
};

PLUGD_PLUGIN(chat)
