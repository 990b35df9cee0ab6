// pinned: breaks the SDK rule against thread_local objects with destructors. glibc then
// cannot unload the library while worker threads live; plugd must report that, not crash.
#include <plugd/plugin.hpp>

#include <string>

namespace {

thread_local std::string last_message;  // registers a destructor per worker thread

class pinned final : public plugd::handler {
  public:
    explicit pinned(plugd::context&) {}
    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        last_message = req.message();
        out << "pinned:" << last_message;
        co_return;
    }
};

}  // namespace

PLUGD_PLUGIN(pinned)
