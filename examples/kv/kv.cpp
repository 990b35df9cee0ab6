// kv: a key-value store whose data survives reloads, because it lives in the core's
// per-instance shared state, not in the plugin.
//   SET k v -> OK    GET k -> v or NIL    DEL k -> 1 or 0    INCR k -> the new integer
#include <plugd/plugin.hpp>

#include <stdexcept>
#include <string>

namespace {

class kv final : public plugd::handler {
  public:
    explicit kv(plugd::context& ctx) : data_{ctx.shared()} {}

    plugd::task<void> handle(plugd::request req, plugd::reply& out) override {
        std::string_view line = req.message();
        const auto word = [&line] {
            const auto space = line.find(' ');
            const auto w = line.substr(0, space);
            line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
            return w;
        };
        const auto command = word();
        if (command == "SET") {
            const auto key = word();
            data_.set(key, line);  // the rest of the line, spaces included
            out << "OK";
        } else if (command == "GET") {
            out << data_.get(line).value_or("NIL");
        } else if (command == "DEL") {
            out << (data_.erase(line) ? "1" : "0");
        } else if (command == "INCR") {
            try {
                out << std::to_string(data_.increment(line));
            } catch (const std::invalid_argument&) {
                out << "ERR value is not an integer";
            }
        } else {
            out << "ERR unknown command; use SET k v, GET k, DEL k or INCR k";
        }
        co_return;
    }

  private:
    plugd::shared_map& data_;
};

}  // namespace

PLUGD_PLUGIN(kv)
