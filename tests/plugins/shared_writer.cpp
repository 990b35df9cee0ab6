// shared_writer: examples/kv's commands on ctx.shared(), plus what a test of the shared
// state with workers needs:
//   SET k v -> OK    GET k -> v or NIL    DEL k -> 1 or 0    INCR k -> the new integer
//   SIZE -> the number of entries    PID -> the serving process's pid
//   CRASHSET k -> the process dies inside ctx.shared().set(k, ...), half-way through
//                 copying the value: the value's bytes run into memory that faults
#include <plugd/plugin.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace {

// 100 readable bytes followed by a page that faults: a copy of the view dies in the middle.
std::string_view value_that_faults_half_way() {
    auto* base = static_cast<char*>(
        ::mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED) std::abort();
    std::memset(base, 'x', 4096);
    ::mprotect(base + 4096, 4096, PROT_NONE);
    return {base + 4096 - 100, 4096};
}

class shared_writer final : public plugd::handler {
  public:
    explicit shared_writer(plugd::context& ctx) : data_{ctx.shared()} {}

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
            data_.set(key, line);
            out << "OK";
        } else if (command == "GET") {
            out << data_.get(line).value_or("NIL");
        } else if (command == "DEL") {
            out << (data_.erase(line) ? "1" : "0");
        } else if (command == "INCR") {
            out << std::to_string(data_.increment(line));
        } else if (command == "SIZE") {
            out << std::to_string(data_.size());
        } else if (command == "PID") {
            out << std::to_string(::getpid());
        } else if (command == "CRASHSET") {
            data_.set(line, value_that_faults_half_way());
            out << "survived";  // never: the copy faults
        } else {
            out << "ERR unknown command";
        }
        co_return;
    }

  private:
    plugd::shared_map& data_;
};

}  // namespace

PLUGD_PLUGIN(shared_writer)
