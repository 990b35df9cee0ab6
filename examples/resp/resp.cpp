// resp: a whole-connection plugin (framing "raw") speaking enough of the Redis protocol
// (RESP2) for redis-cli and redis-benchmark: PING, ECHO, SET, GET, DEL and QUIT, on the
// instance's shared state.
//
// Written the way a fast protocol server is: a command's arguments are views into the bytes
// read (nothing is copied to parse them), replies are appended to one buffer, and every
// command that arrived in one read is answered in one write. Once a connection is warm, a
// command costs no heap allocation of its own.
#include <plugd/plugin.hpp>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// A client that breaks the protocol: it gets "-ERR <what>" and the connection closes.
struct protocol_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr long max_arguments = 1024;
constexpr long max_bulk_bytes = 1 << 20;
constexpr std::size_t max_buffered_bytes = std::size_t{1} << 21;

// Reads the decimal number in `in` from `at` up to "\r\n"; advances `at` past it. False when
// the line has not all arrived yet.
bool number_line(std::string_view in, std::size_t& at, long& n) {
    const auto end = in.find("\r\n", at);
    if (end == std::string_view::npos) return false;
    const std::string_view digits = in.substr(at, end - at);
    const auto [stop, error] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (error != std::errc{} || stop != digits.data() + digits.size())
        throw protocol_error("Protocol error: invalid length '" + std::string{digits} + "'");
    at = end + 2;
    return true;
}

// Parses the command at the front of `in` into `args` (views into `in`): an array of bulk
// strings, or an inline command ("PING\r\n", as telnet sends). Returns the bytes it took, or
// 0 when it has not all arrived yet.
std::size_t parse_command(std::string_view in, std::vector<std::string_view>& args) {
    args.clear();
    std::size_t at = 0;
    if (in.starts_with('*')) {
        at = 1;
        long count = 0;
        if (!number_line(in, at, count)) return 0;
        if (count < 0 || count > max_arguments)
            throw protocol_error("Protocol error: bad array length");
        for (long i = 0; i < count; ++i) {
            if (at >= in.size()) return 0;
            if (in[at] != '$') throw protocol_error("Protocol error: expected '$'");
            ++at;
            long size = 0;
            if (!number_line(in, at, size)) return 0;
            if (size < 0 || size > max_bulk_bytes)
                throw protocol_error("Protocol error: bad bulk length");
            const auto bytes = static_cast<std::size_t>(size);
            if (in.size() < at + bytes + 2) return 0;
            args.push_back(in.substr(at, bytes));
            at += bytes + 2;
        }
        return at;
    }
    const auto end = in.find('\n');
    if (end == std::string_view::npos) return 0;
    std::string_view line = in.substr(0, end);
    if (line.ends_with('\r')) line.remove_suffix(1);
    for (std::size_t word = 0; word < line.size();) {
        const auto space = std::min(line.find(' ', word), line.size());
        if (space > word) args.push_back(line.substr(word, space - word));
        word = space + 1;
    }
    return end + 1;
}

// Whether `name` is `upper` in any case (Redis's command names are case-insensitive).
bool is(std::string_view name, std::string_view upper) {
    if (name.size() != upper.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) != upper[i]) return false;
    }
    return true;
}

void append_number(std::string& out, char type, long n) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out += type;
    out.append(digits, end);
    out += "\r\n";
}

void append_bulk(std::string& out, std::string_view s) {
    append_number(out, '$', static_cast<long>(s.size()));
    out += s;
    out += "\r\n";
}

class resp final : public plugd::handler {
  public:
    explicit resp(plugd::context& ctx) : ctx_{ctx} {}

    plugd::task<void> serve(plugd::connection& conn) override {
        std::string kept;  // the start of a command whose rest has not arrived yet
        std::string out;   // the replies to one read's commands
        std::vector<std::string_view> args;
        char chunk[4096];
        for (;;) {
            const std::size_t n = co_await conn.read_some(chunk, sizeof chunk);
            if (n == 0) co_return;  // the client left (or the server is closing)
            // Usually every command read before was whole: the new bytes are parsed where
            // they lie. Otherwise they join the part kept from before.
            std::string_view in{chunk, n};
            if (!kept.empty()) {
                kept.append(chunk, n);
                in = kept;
            }
            bool quit = false;
            std::size_t done = 0;
            try {
                // Every complete command answered in one write: pipelining costs nothing.
                while (!quit) {
                    const std::size_t used = parse_command(in.substr(done), args);
                    if (used == 0) break;
                    done += used;
                    if (!args.empty()) quit = answer(args, out);
                }
                if (in.size() - done > max_buffered_bytes)
                    throw protocol_error("Protocol error: too big");
            } catch (const protocol_error& e) {
                out += "-ERR ";
                out += e.what();
                out += "\r\n";
                quit = true;
            }
            if (kept.empty()) {
                kept.assign(in.substr(done));
            } else {
                kept.erase(0, done);
            }
            co_await conn.write(out);
            out.clear();
            if (quit) co_return;
        }
    }

  private:
    // Appends the reply to `out`; true for QUIT.
    bool answer(const std::vector<std::string_view>& args, std::string& out) {
        const std::string_view name = args[0];
        const auto arity = [&](std::size_t n) {
            if (args.size() == n) return true;
            out += "-ERR wrong number of arguments for '";
            out += name;
            out += "' command\r\n";
            return false;
        };
        if (is(name, "PING")) {
            if (args.size() > 1) {
                append_bulk(out, args[1]);
            } else {
                out += "+PONG\r\n";
            }
        } else if (is(name, "ECHO")) {
            if (arity(2)) append_bulk(out, args[1]);
        } else if (is(name, "SET")) {
            if (arity(3)) {
                ctx_.shared().set(args[1], args[2]);
                out += "+OK\r\n";
            }
        } else if (is(name, "GET")) {
            if (arity(2)) {
                const auto value = ctx_.shared().get(args[1]);
                if (value) {
                    append_bulk(out, *value);
                } else {
                    out += "$-1\r\n";
                }
            }
        } else if (is(name, "DEL")) {
            long removed = 0;
            for (std::size_t i = 1; i < args.size(); ++i) removed += ctx_.shared().erase(args[i]);
            append_number(out, ':', removed);
        } else if (is(name, "COMMAND")) {
            out += "*0\r\n";  // redis-cli asks at start-up; an empty table is a valid answer
        } else if (is(name, "QUIT")) {
            out += "+OK\r\n";
            return true;
        } else {
            out += "-ERR unknown command '";
            out += name;
            out += "'\r\n";
        }
        return false;
    }

    plugd::context& ctx_;
};

}  // namespace

PLUGD_PLUGIN(resp)
