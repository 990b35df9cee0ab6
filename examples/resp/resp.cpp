// resp: a whole-connection plugin (framing "raw") speaking enough of the Redis protocol
// (RESP2) for redis-cli: PING, ECHO, SET, GET, DEL and QUIT, on the instance's shared state.
#include <plugd/plugin.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A client that breaks the protocol: it gets "-ERR <what>" and the connection closes.
struct protocol_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads the decimal number in `in` from `at` up to "\r\n"; advances `at` past it.
std::optional<long> number_line(std::string_view in, std::size_t& at) {
    const auto end = in.find("\r\n", at);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string digits{in.substr(at, end - at)};
    at = end + 2;
    try {
        std::size_t used = 0;
        const long n = std::stol(digits, &used);
        if (used == digits.size()) return n;
    } catch (const std::exception&) {
    }
    throw protocol_error("Protocol error: invalid length '" + digits + "'");
}

// Takes one command off the front of `in`: an array of bulk strings, or an inline command
// ("PING\r\n", as telnet sends). Nothing when it has not all arrived yet.
std::optional<std::vector<std::string>> next_command(std::string& in) {
    std::vector<std::string> args;
    std::size_t at = 0;
    if (in.starts_with('*')) {
        at = 1;
        const auto count = number_line(in, at);
        if (!count) return std::nullopt;
        if (*count < 0 || *count > 1024) throw protocol_error("Protocol error: bad array length");
        for (long i = 0; i < *count; ++i) {
            if (at >= in.size()) return std::nullopt;
            if (in[at] != '$') throw protocol_error("Protocol error: expected '$'");
            ++at;
            const auto size = number_line(in, at);
            if (!size) return std::nullopt;
            if (*size < 0 || *size > (1 << 20))
                throw protocol_error("Protocol error: bad bulk length");
            const auto bytes = static_cast<std::size_t>(*size);
            if (in.size() < at + bytes + 2) return std::nullopt;
            args.push_back(in.substr(at, bytes));
            at += bytes + 2;
        }
    } else {
        const auto end = in.find('\n');
        if (end == std::string::npos) return std::nullopt;
        std::string_view line{in.data(), end};
        if (line.ends_with('\r')) line.remove_suffix(1);
        for (std::size_t word = 0; word < line.size();) {
            const auto space = std::min(line.find(' ', word), line.size());
            if (space > word) args.emplace_back(line.substr(word, space - word));
            word = space + 1;
        }
        at = end + 1;
    }
    in.erase(0, at);
    return args;
}

std::string bulk(std::string_view s) {
    return "$" + std::to_string(s.size()) + "\r\n" + std::string{s} + "\r\n";
}

class resp final : public plugd::handler {
  public:
    explicit resp(plugd::context& ctx) : ctx_{ctx} {}

    plugd::task<void> serve(plugd::connection& conn) override {
        std::string in;
        std::string out;
        char chunk[4096];
        for (;;) {
            const std::size_t n = co_await conn.read_some(chunk, sizeof chunk);
            if (n == 0) co_return;  // the client left (or the server is closing)
            in.append(chunk, n);
            bool quit = false;
            try {
                // Every complete command answered in one write: pipelining costs nothing.
                while (!quit) {
                    auto args = next_command(in);
                    if (!args) break;
                    if (!args->empty()) quit = answer(*args, out);
                }
                if (in.size() > (std::size_t{1} << 21))
                    throw protocol_error("Protocol error: too big");
            } catch (const protocol_error& e) {
                out += "-ERR " + std::string{e.what()} + "\r\n";
                quit = true;
            }
            co_await conn.write(out);
            out.clear();
            if (quit) co_return;
        }
    }

  private:
    // Appends the reply to `out`; true for QUIT.
    bool answer(std::vector<std::string>& args, std::string& out) {
        std::string name = args[0];
        for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const auto arity = [&](std::size_t n) {
            if (args.size() == n) return true;
            out += "-ERR wrong number of arguments for '" + args[0] + "' command\r\n";
            return false;
        };
        if (name == "PING") {
            out += args.size() > 1 ? bulk(args[1]) : "+PONG\r\n";
        } else if (name == "ECHO") {
            if (arity(2)) out += bulk(args[1]);
        } else if (name == "SET") {
            if (arity(3)) {
                ctx_.shared().set(args[1], args[2]);
                out += "+OK\r\n";
            }
        } else if (name == "GET") {
            if (arity(2)) {
                const auto value = ctx_.shared().get(args[1]);
                out += value ? bulk(*value) : "$-1\r\n";
            }
        } else if (name == "DEL") {
            long removed = 0;
            for (std::size_t i = 1; i < args.size(); ++i) removed += ctx_.shared().erase(args[i]);
            out += ":" + std::to_string(removed) + "\r\n";
        } else if (name == "COMMAND") {
            out += "*0\r\n";  // redis-cli asks at start-up; an empty table is a valid answer
        } else if (name == "QUIT") {
            out += "+OK\r\n";
            return true;
        } else {
            out += "-ERR unknown command '" + args[0] + "'\r\n";
        }
        return false;
    }

    plugd::context& ctx_;
};

}  // namespace

PLUGD_PLUGIN(resp)
