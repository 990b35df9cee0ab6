// pass_through: a filter that does nothing but run the rest of its chain, so that the
// `chain` benchmark measures what routing and chaining cost by themselves.
#include <plugd/plugin.hpp>

namespace {

class pass_through final : public plugd::handler {
  public:
    explicit pass_through(plugd::context&) {}

    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        co_await next(req, out);
    }
};

}  // namespace

PLUGD_PLUGIN(pass_through)
