// greeter: the plugin at the end of the gateway's "hello" chain. Answers "<greeting>,
// <name>!", the name being the rest of the path after the route ("/hello/ann" -> "ann"),
// and says which bearer token let the request in, as bearer_auth attached it.
#include <plugd/plugin.hpp>

#include <string>
#include <string_view>

namespace {

class greeter final : public plugd::handler {
  public:
    explicit greeter(plugd::context& ctx) : greeting_{ctx.config().value("greeting", "Hello")} {}

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        // Without a route (a listener's chain, the test harness) the message stands in.
        std::string_view name = req.route().empty() ? req.message() : req.path_rest();
        if (name.empty()) name = "world";
        out << greeting_ << ", " << name << "!";
        if (const auto token = req.attached("bearer_auth.token"); !token.empty())
            out << " (token #" << token << ")";
        co_return;
    }

  private:
    std::string greeting_;
};

}  // namespace

PLUGD_PLUGIN(greeter)
