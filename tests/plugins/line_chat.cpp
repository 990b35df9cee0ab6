// line_chat: a line chat on a raw listener. A client's first line names its room; every
// later line goes to the other clients of that room, tagged with the build ("v1:hello"), so
// that tests can tell which version of the plugin a message came through.
#include <plugd/plugin.hpp>

#ifndef LINE_CHAT_TAG
#define LINE_CHAT_TAG "v1:"
#endif

class line_chat final : public plugd::handler {
  public:
    explicit line_chat(plugd::context& ctx) : topics_{ctx.topics()} {}

    plugd::task<void> serve(plugd::connection& c) override {
        const auto first = co_await c.next("\n");
        if (!first) co_return;
        const std::string room = "chat/" + std::string{first.data()};
        topics_.subscribe(c, room);
        co_await c.write("joined " + std::string{first.data()} + "\n");
        while (auto ev = co_await c.next("\n")) {
            if (ev.published()) {
                co_await c.write(std::string{ev.data()} + "\n");
            } else {
                topics_.publish(room, LINE_CHAT_TAG + std::string{ev.data()},
                                plugd::message_type::text, c);
            }
        }
    }

  private:
    plugd::topics& topics_;
};

PLUGD_PLUGIN(line_chat)
