// wrong_handle: a plugin whose handle() has another signature than plugd::handler's (const),
// so it hides handler::handle instead of overriding it: a mistake that compiles without
// `override`. plugd must refuse it on a line, oneshot or http listener, naming the listener.
#include <plugd/plugin.hpp>

class wrong_handle final : public plugd::handler {
  public:
    explicit wrong_handle(plugd::context&) {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) const {
        out << req.message();
        co_return;
    }
};

PLUGD_PLUGIN(wrong_handle)
