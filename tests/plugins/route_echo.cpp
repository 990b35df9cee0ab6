// route_echo: a test plugin that answers with what the core told it about the request:
// "<answer> route=<route> rest=<path_rest> message=<message> token=<gate.token>".
// config: "answer" (default "v1"), "delay_ms" (default 0: answers at once),
// "subject_only" (answers "subject=<the TLS client certificate's subject>" instead).
#include <plugd/plugin.hpp>

#include <chrono>
#include <string>

namespace {

class route_echo final : public plugd::handler {
  public:
    explicit route_echo(plugd::context& ctx)
        : ctx_{ctx},
          answer_{ctx.config().value("answer", std::string{"v1"})},
          delay_{ctx.config().value("delay_ms", 0)},
          subject_only_{ctx.config().value("subject_only", false)} {}

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        if (delay_ > 0) co_await ctx_.sleep_for(std::chrono::milliseconds{delay_});
        if (subject_only_) {
            out << "subject=" << req.client_subject();
            co_return;
        }
        out << answer_ << " route=" << req.route() << " rest=" << req.path_rest()
            << " message=" << req.message() << " token=" << req.attached("gate.token");
    }

  private:
    plugd::context& ctx_;
    std::string answer_;
    int delay_;
    bool subject_only_;
};

}  // namespace

PLUGD_PLUGIN(route_echo)
