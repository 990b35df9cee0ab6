// server.json: parsing and strict validation, with messages that name the JSON path.
#include "config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace plugd {
namespace {

using json = nlohmann::json;

// Appends a JSON Pointer reference token, escaped as RFC 6901 requires.
std::string child(const std::string& path, std::string_view token) {
    std::string out = path + "/";
    for (char c : token) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}
std::string child(const std::string& path, std::size_t index) {
    return path + "/" + std::to_string(index);
}

// A bound in a message: "1", "0.01", "1e+06".
std::string number_text(double n) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", n);
    return text;
}

std::string describe(const json& v) {
    std::string shown = v.dump();
    if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
    return shown + " (" + v.type_name() + ")";
}

// Everything that validates one document: its source name for messages and the checks.
class validator {
  public:
    explicit validator(std::string source) : source_{std::move(source)} {}

    [[noreturn]] void fail(const std::string& path, const std::string& what) const {
        throw config_error(source_ + ": " + (path.empty() ? "/" : path) + ": " + what);
    }

    const json& object_at(const json& v, const std::string& path) const {
        if (!v.is_object()) fail(path, "expected an object, got " + describe(v));
        return v;
    }

    // Refuses keys we do not know: a typo must not silently fall back to a default.
    void only_keys(const json& obj, const std::string& path,
                   std::initializer_list<std::string_view> known) const {
        for (const auto& [key, value] : obj.items()) {
            bool ok = false;
            for (auto k : known) ok = ok || key == k;
            if (ok) continue;
            std::string list;
            for (auto k : known) list += (list.empty() ? "" : ", ") + std::string{k};
            fail(child(path, key), "unknown key; expected one of: " + list);
        }
    }

    const json* find(const json& obj, std::string_view key) const {
        auto it = obj.find(key);
        return it == obj.end() ? nullptr : &*it;
    }

    const json& require(const json& obj, const std::string& path, std::string_view key) const {
        const json* v = find(obj, key);
        if (!v) fail(child(path, key), "missing; this key is required");
        return *v;
    }

    std::uint64_t integer(const json& v, const std::string& path, std::uint64_t min,
                          std::uint64_t max) const {
        const std::string expected =
            "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
        if (!v.is_number_integer()) fail(path, expected + ", got " + describe(v));
        if (v.is_number_unsigned()) {
            const auto n = v.get<std::uint64_t>();
            if (n >= min && n <= max) return n;
        } else if (const auto n = v.get<std::int64_t>(); n >= 0) {
            const auto u = static_cast<std::uint64_t>(n);
            if (u >= min && u <= max) return u;
        }
        fail(path, expected + ", got " + v.dump());
    }

    std::uint64_t integer_or(const json& obj, const std::string& path, std::string_view key,
                             std::uint64_t min, std::uint64_t max, std::uint64_t fallback) const {
        const json* v = find(obj, key);
        return v ? integer(*v, child(path, key), min, max) : fallback;
    }

    double number(const json& v, const std::string& path, double min, double max) const {
        const std::string expected =
            "expected a number from " + number_text(min) + " to " + number_text(max);
        if (!v.is_number()) fail(path, expected + ", got " + describe(v));
        const double n = v.get<double>();
        if (!(n >= min && n <= max)) fail(path, expected + ", got " + v.dump());
        return n;
    }

    double number_or(const json& obj, const std::string& path, std::string_view key, double min,
                     double max, double fallback) const {
        const json* v = find(obj, key);
        return v ? number(*v, child(path, key), min, max) : fallback;
    }

    std::string string(const json& v, const std::string& path) const {
        if (!v.is_string()) fail(path, "expected a string, got " + describe(v));
        auto s = v.get<std::string>();
        if (s.empty()) fail(path, "expected a non-empty string");
        return s;
    }

  private:
    std::string source_;
};

// nlohmann_json keeps the last of duplicate keys silently; a duplicate plugin or listener
// name is almost always a copy-paste mistake, so the parse callback refuses it. It also
// bounds the nesting depth: nlohmann parses iteratively, but copying, comparing and
// printing a value recurse, so a document nested 100,000 deep would overflow the stack
// the first time anything (an error message, a plugin's config copy) touched it.
class structure_checker {
  public:
    explicit structure_checker(const validator& v) : v_{v} {}

    bool operator()(int, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                element();
                if (frames_.size() >= max_config_depth) {
                    v_.fail(path(), "nesting deeper than " + std::to_string(max_config_depth) +
                                        " levels; flatten this value (no server.json or "
                                        "plugin config needs more)");
                }
                frames_.push_back({event == json::parse_event_t::array_start, 0, {}, {}});
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                frames_.pop_back();
                break;
            case json::parse_event_t::key: {
                auto& top = frames_.back();
                top.key = parsed.get<std::string>();
                if (!top.seen.insert(top.key).second)
                    v_.fail(path(), "duplicate key; each name may appear only once here");
                break;
            }
            case json::parse_event_t::value:
                element();
                break;
        }
        return true;
    }

  private:
    struct frame {
        bool is_array;
        std::size_t next_index;
        std::string key;
        std::set<std::string> seen;
    };

    void element() {
        if (!frames_.empty() && frames_.back().is_array) {
            frames_.back().key = std::to_string(frames_.back().next_index++);
        }
    }

    std::string path() const {
        std::string p;
        for (const auto& f : frames_) p = f.is_array ? p + "/" + f.key : child(p, f.key);
        return p;
    }

    const validator& v_;
    std::vector<frame> frames_;
};

// "line:column" of the byte at 1-based offset `byte` (nlohmann's parse_error::byte).
std::string line_column(std::string_view text, std::size_t byte) {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return std::to_string(line) + ":" + std::to_string(column);
}

// Names appear in log lines, file names of private plugin copies and error messages:
// keep them to characters that are safe in all three.
bool is_plain_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name.front() == '.') return false;
    for (unsigned char c : name) {
        if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
    }
    return true;
}

bool is_numeric_address(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_loopback_address(const std::string& s) {
    in_addr v4;
    if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6;
    if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return false;
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(v6.s6_addr, loopback, 16) == 0;
}

// The first line of `file` at `path`, a secret nobody but plugd's user may read (`exposure`
// says what a reader could do with it). Opened without blocking, so a FIFO cannot hang -t
// or start-up; refused unless it is a regular file. `create`: how to make one.
std::string read_secret_line(const validator& v, const std::string& path,
                             const std::filesystem::path& file, const std::string& holds,
                             const std::string& exposure, const std::string& create) {
    // Appended, not a + chain: GCC 12 warns falsely of an overflow on that.
    const std::string name = std::string{"\""}.append(file.string()).append("\"");
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) v.fail(path, "cannot open " + name + ": " + std::strerror(errno) + "; " + create);
    struct stat st {};
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    std::string text;
    if (regular && (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) {
        char chunk[512];
        while (text.size() < 4096) {
            const ssize_t n = ::read(fd, chunk, sizeof chunk);
            if (n <= 0) break;
            // Bounded for GCC 12, which cannot see that n is positive here.
            text.append(chunk, std::min(static_cast<std::size_t>(n), sizeof chunk));
        }
    }
    ::close(fd);
    if (!regular)
        v.fail(path, name + " is not a regular file; point it at a file holding " + holds);
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        v.fail(path, name + " may be read or changed by other users (mode " + mode +
                         "): " + exposure + "; run: chmod 600 " + file.string());
    }
    return text.substr(0, text.find_first_of("\r\n"));
}

// The admin endpoint's bearer token (whoever reads it can reload the server).
std::string read_admin_token(const validator& v, const std::filesystem::path& file) {
    const std::string path = "/admin/token_file";
    const std::string token = read_secret_line(
        v, path, file, "the token", "whoever reads the token can reload the server",
        "create it with a random token, for example: (umask 077; head -c 32 /dev/urandom | "
        "base64 > " +
            file.string() + ")");
    // RFC 6750's b64token: what fits in an Authorization field unquoted.
    const bool b64token = !token.empty() && token.find_first_not_of(
                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                                                "wxyz0123456789-._~+/=") == std::string::npos;
    if (!b64token || token.size() < 16) {
        v.fail(path, "\"" + file.string() +
                         "\" must hold a token of at least 16 characters (letters, digits, "
                         "-._~+/=) on its first line; for example: "
                         "head -c 32 /dev/urandom | base64 > " +
                         file.string());
    }
    return token;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
    std::filesystem::path path{p};
    return path.is_absolute() ? path : (base / path).lexically_normal();
}

std::filesystem::path plugin_file(const validator& v, const std::string& path,
                                  const std::filesystem::path& plugin_dir,
                                  const std::string& file) {
    std::filesystem::path rel{file};
    if (rel.is_absolute()) {
        v.fail(path, "must be a file name inside plugin_dir (" + plugin_dir.string() +
                         "), not an absolute path; set /plugin_dir to its folder instead");
    }
    for (const auto& part : rel) {
        if (part == "..") {
            v.fail(path, "must not leave plugin_dir with \"..\"; set /plugin_dir instead");
        }
    }
    if (rel.extension() != ".so") rel += ".so";
    return (plugin_dir / rel).lexically_normal();
}

// Reads a `limits` object over `defaults`. Listeners may override the per-connection
// limits; the server-wide ones (shutdown, reload drain) only exist at the top level.
// `"plugin": "x"` or `"chain": ["auth", "x"]` of the object at `p`: exactly one of them,
// every name an instance of `cfg`, none twice.
std::vector<std::string> parse_chain(const validator& v, const json& spec, const std::string& p,
                                     const server_config& cfg) {
    const json* plugin = v.find(spec, "plugin");
    const json* chain = v.find(spec, "chain");
    if (plugin && chain)
        v.fail(child(p, "chain"),
               "give either \"plugin\" or \"chain\", not both (a chain's last "
               "instance is its plugin)");
    if (!plugin && !chain)
        v.fail(child(p, "plugin"),
               "missing; name the plugin instance that answers (\"plugin\": "
               "\"greeting\"), or a chain of them (\"chain\": [\"auth\", "
               "\"greeting\"])");
    std::vector<std::pair<std::string, std::string>> named;  // (name, JSON path)
    if (plugin) {
        named.emplace_back(v.string(*plugin, child(p, "plugin")), child(p, "plugin"));
    } else {
        const std::string cp = child(p, "chain");
        if (!chain->is_array() || chain->empty())
            v.fail(cp,
                   "expected a non-empty array of plugin instance names (filters first, the "
                   "plugin that answers last), got " +
                       describe(*chain));
        for (std::size_t i = 0; i < chain->size(); ++i)
            named.emplace_back(v.string((*chain)[i], child(cp, i)), child(cp, i));
    }
    std::vector<std::string> names;
    for (const auto& [name, where] : named) {
        if (!cfg.find_plugin(name)) {
            std::string known;
            for (const auto& pl : cfg.plugins) known += (known.empty() ? "" : ", ") + pl.name;
            v.fail(where, "no plugin instance named \"" + name +
                              "\" in /plugins (instances: " + known + ")");
        }
        if (std::find(names.begin(), names.end(), name) != names.end())
            v.fail(where, "\"" + name +
                              "\" is already in this chain; an instance runs once per "
                              "request (declare a second instance under /plugins to "
                              "run the same plugin twice)");
        names.push_back(name);
    }
    return names;
}

// Why a route's path can never equal a request's normalised path (percent-decoded, no
// empty, "." or ".." segments), or null when it can.
const char* unreachable_path(const std::string& path) {
    if (path.front() != '/') return "does not start with '/'";
    if (path.find_first_of("?#") != std::string::npos)
        return "holds a query or fragment ('?', '#'), which routes do not match: match the path "
               "alone";
    if (path.find('%') != std::string::npos)
        return "holds '%': requests are matched after percent-decoding, so write the path "
               "decoded";
    if (path.find("//") != std::string::npos)
        return "holds \"//\", which request paths lose when they are normalised";
    for (std::size_t at = 0; at < path.size();) {
        const std::size_t end = std::min(path.find('/', at + 1), path.size());
        const std::string_view segment = std::string_view{path}.substr(at + 1, end - at - 1);
        if (segment == "." || segment == "..")
            return "holds a \".\" or \"..\" segment, which request paths lose when they are "
                   "normalised";
        at = end;
    }
    return nullptr;
}

bool is_method_token(const std::string& m) {
    return !m.empty() && std::all_of(m.begin(), m.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    });
}

// A host pattern as routes compare it: lower case; "*." only as a whole first label.
std::string route_host(const validator& v, std::string host, const std::string& where) {
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string_view name = host.starts_with("*.") ? std::string_view{host}.substr(2) : host;
    const bool valid =
        !name.empty() && name.front() != '.' && name.back() != '.' &&
        name.find("..") == std::string_view::npos &&
        std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        });
    if (!valid)
        v.fail(where, "\"" + host +
                          "\" is not a host name routes can match; write \"api.example.com\" or "
                          "\"*.example.com\" (every subdomain), without a port or scheme");
    return host;
}

std::vector<route_spec> parse_routes(const validator& v, const json& routes, const std::string& p,
                                     const server_config& cfg) {
    if (!routes.is_array() || routes.empty())
        v.fail(p, "expected a non-empty array of routes, got " + describe(routes));
    std::vector<route_spec> out;
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const std::string rp = child(p, i);
        const json& spec = v.object_at(routes[i], rp);
        v.only_keys(spec, rp, {"name", "host", "path", "methods", "plugin", "chain"});
        route_spec r;
        if (const json* name = v.find(spec, "name")) {
            r.label = v.string(*name, child(rp, "name"));
            if (!is_plain_name(r.label))
                v.fail(child(rp, "name"), "\"" + r.label +
                                              "\" is not a usable route name; use letters, "
                                              "digits, '_', '-' and '.', not starting with '.'");
        } else {
            r.label = std::to_string(i);
        }
        if (const json* host = v.find(spec, "host"))
            r.host = route_host(v, v.string(*host, child(rp, "host")), child(rp, "host"));
        r.path = v.string(v.require(spec, rp, "path"), child(rp, "path"));
        if (const char* why = unreachable_path(r.path))
            v.fail(child(rp, "path"), "\"" + r.path + "\" " + why +
                                          ", so this route could never match: an unreachable "
                                          "route is refused");
        if (const json* methods = v.find(spec, "methods")) {
            const std::string mp = child(rp, "methods");
            if (!methods->is_array() || methods->empty())
                v.fail(mp,
                       "expected a non-empty array of methods such as [\"GET\", \"POST\"] "
                       "(leave it out for every method), got " +
                           describe(*methods));
            for (std::size_t m = 0; m < methods->size(); ++m) {
                const std::string method = v.string((*methods)[m], child(mp, m));
                if (!is_method_token(method))
                    v.fail(child(mp, m), "\"" + method +
                                             "\" is not an HTTP method; write it in upper case, "
                                             "as requests send it (\"GET\", \"POST\", ...)");
                if (std::find(r.methods.begin(), r.methods.end(), method) != r.methods.end())
                    v.fail(child(mp, m), "\"" + method + "\" is listed twice");
                r.methods.push_back(method);
            }
        }
        r.chain = parse_chain(v, spec, rp, cfg);
        for (std::size_t j = 0; j < out.size(); ++j) {
            const route_spec& other = out[j];
            if (other.label == r.label)  // a name may be another route's index
                v.fail(child(rp, "name"),
                       "duplicate route name \"" + r.label + "\", also used by " + child(p, j));
            if (other.host != r.host || other.path != r.path) continue;
            std::string shared;
            if (other.methods.empty() && r.methods.empty()) {
                shared = "every method";
            } else {
                for (const auto& m : r.methods)
                    if (std::find(other.methods.begin(), other.methods.end(), m) !=
                        other.methods.end())
                        shared += (shared.empty() ? "" : ", ") + m;
            }
            if (shared.empty()) continue;
            v.fail(rp, "matches the same requests as " + child(p, j) + " (host \"" + r.host +
                           "\", path \"" + r.path + "\", " + shared +
                           "), so one of them is unreachable; remove one, or tell them apart by "
                           "host, path or methods");
        }
        out.push_back(std::move(r));
    }
    return out;
}

limits parse_limits(const validator& v, const json& obj, const std::string& p, limits l,
                    bool server_wide) {
    v.object_at(obj, p);
    if (server_wide) {
        v.only_keys(obj, p,
                    {"max_connections", "max_request_bytes", "max_output_bytes", "idle_timeout_ms",
                     "request_timeout_ms", "write_timeout_ms", "max_queued_messages",
                     "slow_subscriber", "shutdown_timeout_ms", "shutdown_delay_ms",
                     "reload_drain_timeout_ms", "stall_warn_ms"});
    } else {
        v.only_keys(
            obj, p,
            {"max_connections", "max_request_bytes", "max_output_bytes", "idle_timeout_ms",
             "request_timeout_ms", "write_timeout_ms", "max_queued_messages", "slow_subscriber"});
    }
    constexpr std::uint64_t day_ms = 24ull * 3600 * 1000;
    l.max_connections = v.integer_or(obj, p, "max_connections", 1, 10'000'000, l.max_connections);
    l.max_request_bytes =
        v.integer_or(obj, p, "max_request_bytes", 1, 1ull << 30, l.max_request_bytes);
    l.max_output_bytes =
        v.integer_or(obj, p, "max_output_bytes", 1024, 1ull << 32, l.max_output_bytes);
    l.max_queued_messages =
        v.integer_or(obj, p, "max_queued_messages", 1, 1'000'000, l.max_queued_messages);
    if (const json* slow = v.find(obj, "slow_subscriber")) {
        const std::string s = v.string(*slow, child(p, "slow_subscriber"));
        if (s == "close") {
            l.slow_subscriber = slow_subscriber_policy::close;
        } else if (s == "unsubscribe") {
            l.slow_subscriber = slow_subscriber_policy::unsubscribe;
        } else {
            v.fail(child(p, "slow_subscriber"),
                   "\"" + s +
                       "\" is not a policy; expected \"close\" (close a subscriber that falls "
                       "max_queued_messages behind) or \"unsubscribe\" (end only its "
                       "subscription to that topic)");
        }
    }
    using ms = std::chrono::milliseconds;
    auto millis = [&](std::string_view key, ms fallback) {
        return ms{
            v.integer_or(obj, p, key, 1, day_ms, static_cast<std::uint64_t>(fallback.count()))};
    };
    l.idle_timeout = millis("idle_timeout_ms", l.idle_timeout);
    l.request_timeout = millis("request_timeout_ms", l.request_timeout);
    l.write_timeout = millis("write_timeout_ms", l.write_timeout);
    l.shutdown_timeout = millis("shutdown_timeout_ms", l.shutdown_timeout);
    l.reload_drain_timeout = millis("reload_drain_timeout_ms", l.reload_drain_timeout);
    // At least 20 ms: the heartbeat it is measured by comes at most every 10 ms.
    l.stall_warn = ms{v.integer_or(obj, p, "stall_warn_ms", 20, day_ms,
                                   static_cast<std::uint64_t>(l.stall_warn.count()))};
    l.shutdown_delay = ms{v.integer_or(obj, p, "shutdown_delay_ms", 0, day_ms,
                                       static_cast<std::uint64_t>(l.shutdown_delay.count()))};
    return l;
}

// `/listeners/N/websocket`: on http listeners only, where a route's plugin may serve
// WebSocket sessions.
websocket_settings parse_websocket(const validator& v, const json& obj, const std::string& p,
                                   framing_kind framing) {
    v.object_at(obj, p);
    if (framing != framing_kind::http) {
        v.fail(p,
               "WebSocket sessions are served on http listeners (an upgrade is an HTTP "
               "request); remove this key, or give the listener \"framing\": \"http\"");
    }
    v.only_keys(obj, p, {"ping_interval_ms", "idle_timeout_ms", "max_message_bytes"});
    using ms = std::chrono::milliseconds;
    constexpr std::uint64_t day_ms = 24ull * 3'600'000;
    websocket_settings w;
    w.ping_interval = ms{v.integer_or(obj, p, "ping_interval_ms", 0, day_ms,
                                      static_cast<std::uint64_t>(w.ping_interval.count()))};
    w.idle_timeout = ms{v.integer_or(obj, p, "idle_timeout_ms", 10, day_ms,
                                     static_cast<std::uint64_t>(w.idle_timeout.count()))};
    w.max_message_bytes =
        v.integer_or(obj, p, "max_message_bytes", 1, 1ull << 30, w.max_message_bytes);
    if (w.ping_interval.count() > 0 && w.ping_interval >= w.idle_timeout) {
        v.fail(child(p, "ping_interval_ms"),
               std::to_string(w.ping_interval.count()) + " is not below idle_timeout_ms (" +
                   std::to_string(w.idle_timeout.count()) +
                   "): a client would be closed before it is pinged; lower it, or raise "
                   "idle_timeout_ms");
    }
    return w;
}

// `/listeners/N/tls`. The files are only named here: tls/tls_context reads and checks them
// when a generation is prepared (and for -t), so the config stays free of OpenSSL.
tls_settings parse_tls(const validator& v, const json& obj, const std::string& p,
                       const std::filesystem::path& base, framing_kind framing) {
    v.object_at(obj, p);
    v.only_keys(obj, p,
                {"certificate", "private_key", "client_ca", "min_version", "ciphers",
                 "ciphersuites", "alpn", "ticket_key_rotation_ms"});
    tls_settings t;
    t.certificate =
        resolve(base, v.string(v.require(obj, p, "certificate"), child(p, "certificate")));
    t.private_key =
        resolve(base, v.string(v.require(obj, p, "private_key"), child(p, "private_key")));
    if (const json* ca = v.find(obj, "client_ca"))
        t.client_ca = resolve(base, v.string(*ca, child(p, "client_ca")));
    if (const json* min = v.find(obj, "min_version")) {
        const std::string m = v.string(*min, child(p, "min_version"));
        if (m != "1.2" && m != "1.3")
            v.fail(child(p, "min_version"),
                   "\"" + m +
                       "\" is not a TLS version plugd accepts; expected \"1.2\" or \"1.3\" "
                       "(TLS 1.0 and 1.1 are never offered)");
        t.tls13_only = m == "1.3";
    }
    if (const json* ciphers = v.find(obj, "ciphers"))
        t.ciphers = v.string(*ciphers, child(p, "ciphers"));
    if (const json* suites = v.find(obj, "ciphersuites"))
        t.ciphersuites = v.string(*suites, child(p, "ciphersuites"));
    if (const json* alpn = v.find(obj, "alpn")) {
        const std::string ap = child(p, "alpn");
        if (!alpn->is_array() || alpn->empty())
            v.fail(ap,
                   "expected a non-empty array of protocol names such as [\"http/1.1\"] "
                   "(leave it out for the default), got " +
                       describe(*alpn));
        for (std::size_t i = 0; i < alpn->size(); ++i) {
            std::string name = v.string((*alpn)[i], child(ap, i));
            if (name.size() > 255)
                v.fail(child(ap, i), "a protocol name is at most 255 bytes long");
            if (std::find(t.alpn.begin(), t.alpn.end(), name) != t.alpn.end())
                v.fail(child(ap, i), "\"" + name + "\" is listed twice");
            t.alpn.push_back(std::move(name));
        }
    } else if (framing == framing_kind::http) {
        t.alpn = {"http/1.1"};
    }
    // At least a second (keys are derived per period of wall-clock time), at most a week.
    t.ticket_key_rotation = std::chrono::milliseconds{
        v.integer_or(obj, p, "ticket_key_rotation_ms", 1000, 7ull * 24 * 3'600'000,
                     static_cast<std::uint64_t>(t.ticket_key_rotation.count()))};
    return t;
}

// RFC 9110's token: what a header field's name is made of.
bool is_field_name(const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
    });
}

// `/canary`: how a canary reload is judged (reload/canary_judge) and split.
canary_settings parse_canary(const validator& v, const json& obj) {
    const std::string p = "/canary";
    v.object_at(obj, p);
    v.only_keys(obj, p,
                {"min_requests", "min_duration_ms", "max_error_ratio", "max_error_rate",
                 "max_p99_ratio", "max_duration_ms", "sticky"});
    using ms = std::chrono::milliseconds;
    constexpr std::uint64_t day_ms = 24ull * 3600 * 1000;
    canary_settings c;
    c.min_requests = v.integer_or(obj, p, "min_requests", 1, 1'000'000'000, c.min_requests);
    c.min_duration = ms{v.integer_or(obj, p, "min_duration_ms", 0, day_ms,
                                     static_cast<std::uint64_t>(c.min_duration.count()))};
    c.max_duration = ms{v.integer_or(obj, p, "max_duration_ms", 1, day_ms,
                                     static_cast<std::uint64_t>(c.max_duration.count()))};
    // Below 1, a canary exactly as good as the generation it is compared with would break
    // the bound.
    c.max_error_ratio = v.number_or(obj, p, "max_error_ratio", 1, 1e6, c.max_error_ratio);
    c.max_error_rate = v.number_or(obj, p, "max_error_rate", 0, 1, c.max_error_rate);
    c.max_p99_ratio = v.number_or(obj, p, "max_p99_ratio", 1, 1e6, c.max_p99_ratio);
    if (c.max_duration <= c.min_duration) {
        v.fail(child(p, "max_duration_ms"),
               std::to_string(c.max_duration.count()) + " is not above min_duration_ms (" +
                   std::to_string(c.min_duration.count()) +
                   "): every canary would be rolled back before it could be promoted; raise "
                   "it, or lower min_duration_ms");
    }
    if (const json* sticky = v.find(obj, "sticky")) {
        const std::string s = v.string(*sticky, child(p, "sticky"));
        if (s == "peer") {
            c.sticky = canary_sticky::peer;
        } else if (is_field_name(s)) {
            c.sticky = canary_sticky::header;
            c.sticky_header = s;
        } else {
            v.fail(child(p, "sticky"),
                   "\"" + s +
                       "\" is neither \"peer\" (one side per client address) nor the name of a "
                       "request header field (such as \"X-User-Id\": one side per value); "
                       "leave it out for no stickiness");
        }
    }
    return c;
}

// /topics/redis: where the topic bridge connects, and how.
redis_settings parse_redis(const validator& v, const json& obj, const std::filesystem::path& base) {
    const std::string p = "/topics/redis";
    v.object_at(obj, p);
    v.only_keys(obj, p, {"host", "port", "password_file", "channel_prefix", "max_pending"});
    redis_settings r;
    if (const json* host = v.find(obj, "host")) r.host = v.string(*host, p + "/host");
    r.port = static_cast<std::uint16_t>(v.integer_or(obj, p, "port", 1, 65535, r.port));
    // An empty password_file is the documented way of saying "no password".
    if (const json* file = v.find(obj, "password_file");
        file && !(file->is_string() && file->get<std::string>().empty())) {
        r.password_file = resolve(base, v.string(*file, p + "/password_file"));
        r.password = read_secret_line(
            v, p + "/password_file", r.password_file, "the Redis password",
            "whoever reads the password can read and publish every topic",
            "create it holding Redis's password (requirepass) on its first line, readable only "
            "by plugd's user (chmod 600), or remove /topics/redis/password_file");
        if (r.password.empty())
            v.fail(p + "/password_file", "\"" + r.password_file.string() +
                                             "\" holds no password on its first line; write "
                                             "Redis's password (requirepass) there");
    }
    if (const json* prefix = v.find(obj, "channel_prefix")) {
        if (!prefix->is_string())
            v.fail(p + "/channel_prefix", "expected a string, got " + describe(*prefix));
        r.channel_prefix = prefix->get<std::string>();
        // The bridge subscribes to the pattern <prefix>*: a pattern character in the prefix
        // would match other channels, or miss its own.
        if (r.channel_prefix.find_first_of("*?[]\\") != std::string::npos)
            v.fail(p + "/channel_prefix",
                   "\"" + r.channel_prefix +
                       "\" holds a Redis pattern character (* ? [ ] \\); use a plain prefix "
                       "such as \"plugd:\"");
        if (r.channel_prefix.size() > 64)
            v.fail(p + "/channel_prefix",
                   "longer than 64 bytes; use a short prefix such as "
                   "\"plugd:\"");
    }
    r.max_pending = v.integer_or(obj, p, "max_pending", 1, 10'000'000, r.max_pending);
    return r;
}

server_config parse_document(const json& doc, const validator& v,
                             const std::filesystem::path& source,
                             const std::filesystem::path& bundled_plugin_dir) {
    const std::filesystem::path base =
        source.empty() ? std::filesystem::current_path() : source.parent_path();
    server_config cfg;
    cfg.source = source;
    v.object_at(doc, "");
    v.only_keys(doc, "",
                {"threads", "workers", "supervise", "rollback_after_crashes", "rollback_window_ms",
                 "offload_threads", "offload_queue", "plugin_dir", "pid_file", "user", "plugins",
                 "listeners", "limits", "topics", "log", "admin", "canary"});

    cfg.threads = static_cast<unsigned>(v.integer_or(doc, "", "threads", 0, 1024, 0));
    cfg.offload_threads =
        static_cast<unsigned>(v.integer_or(doc, "", "offload_threads", 0, 1024, 0));
    cfg.workers = static_cast<unsigned>(v.integer_or(doc, "", "workers", 1, 256, 1));
    cfg.rollback_after_crashes =
        static_cast<unsigned>(v.integer_or(doc, "", "rollback_after_crashes", 0, 1000, 3));
    cfg.rollback_window = std::chrono::milliseconds{
        v.integer_or(doc, "", "rollback_window_ms", 1, 24ull * 3600 * 1000, 60000)};
    if (const json* supervise = v.find(doc, "supervise")) {
        if (!supervise->is_boolean())
            v.fail("/supervise", "expected true or false, got " + describe(*supervise));
        cfg.supervise = supervise->get<bool>();
    }
    cfg.offload_queue = v.integer_or(doc, "", "offload_queue", 1, 1'000'000, cfg.offload_queue);
    const json* dir = v.find(doc, "plugin_dir");
    cfg.plugin_dir = dir ? resolve(base, v.string(*dir, "/plugin_dir")) : bundled_plugin_dir;
    const json* pid = v.find(doc, "pid_file");
    cfg.pid_file = resolve(base, pid ? v.string(*pid, "/pid_file") : "plugd.pid");

    if (const json* user = v.find(doc, "user")) {
        cfg.user = v.string(*user, "/user");
        if (!::getpwnam(cfg.user.c_str())) {
            v.fail("/user", "no user named \"" + cfg.user + "\" on this machine");
        }
    }
    if (const json* limits = v.find(doc, "limits")) {
        cfg.limits = parse_limits(v, *limits, "/limits", cfg.limits, true);
    }
    if (const json* topics = v.find(doc, "topics")) {
        v.object_at(*topics, "/topics");
        v.only_keys(*topics, "/topics", {"max_message_bytes", "redis"});
        cfg.topics.max_message_bytes =
            v.integer_or(*topics, "/topics", "max_message_bytes", 1, std::uint64_t{64} << 20,
                         cfg.topics.max_message_bytes);
        if (const json* redis = v.find(*topics, "redis"))
            cfg.topics.redis = parse_redis(v, *redis, base);
    }
    if (const json* canary = v.find(doc, "canary")) cfg.canary = parse_canary(v, *canary);
    if (const json* log = v.find(doc, "log")) {
        v.object_at(*log, "/log");
        v.only_keys(*log, "/log", {"level", "format"});
        if (const json* level = v.find(*log, "level")) {
            const std::string l = v.string(*level, "/log/level");
            if (l == "debug")
                cfg.log.level = log_level::debug;
            else if (l == "info")
                cfg.log.level = log_level::info;
            else if (l == "warn")
                cfg.log.level = log_level::warn;
            else if (l == "error")
                cfg.log.level = log_level::error;
            else
                v.fail("/log/level", "\"" + l +
                                         "\" is not a level; expected \"debug\", \"info\", "
                                         "\"warn\" or \"error\"");
        }
        if (const json* format = v.find(*log, "format")) {
            const std::string f = v.string(*format, "/log/format");
            if (f != "text" && f != "json")
                v.fail("/log/format",
                       "\"" + f + "\" is not a log format; expected \"text\" or \"json\"");
            cfg.log.json = f == "json";
        }
    }

    if (const json* admin = v.find(doc, "admin")) {
        v.object_at(*admin, "/admin");
        v.only_keys(*admin, "/admin", {"address", "port", "allow_remote", "token_file"});
        admin_settings a;
        const json* address = v.find(*admin, "address");
        a.address = address ? v.string(*address, "/admin/address") : a.address;
        if (!is_numeric_address(a.address)) {
            v.fail("/admin/address", "\"" + a.address +
                                         "\" is not a numeric IPv4 or IPv6 address (for "
                                         "example \"127.0.0.1\" or \"::1\")");
        }
        a.port = static_cast<std::uint16_t>(
            v.integer(v.require(*admin, "/admin", "port"), "/admin/port", 0, 65535));
        if (const json* remote = v.find(*admin, "allow_remote")) {
            if (!remote->is_boolean())
                v.fail("/admin/allow_remote", "expected true or false, got " + describe(*remote));
            a.allow_remote = remote->get<bool>();
        }
        if (const json* token = v.find(*admin, "token_file")) {
            a.token_file = resolve(base, v.string(*token, "/admin/token_file"));
            a.token = read_admin_token(v, a.token_file);
        }
        if (!a.allow_remote && !is_loopback_address(a.address)) {
            v.fail("/admin/address",
                   "\"" + a.address +
                       "\" is not a loopback address: the admin endpoint can reload the server; "
                       "use \"127.0.0.1\" or \"::1\", or set /admin/allow_remote to true with "
                       "/admin/token_file (and restrict access with a firewall)");
        }
        if (a.allow_remote && a.token.empty()) {
            v.fail("/admin/allow_remote",
                   "true needs /admin/token_file: a file holding the bearer token every client "
                   "but a health check must send (anyone who reaches the port could reload the "
                   "server otherwise); add \"token_file\": \"admin.token\" to /admin and "
                   "create it with: (umask 077; head -c 32 /dev/urandom | base64 > admin.token)");
        }
        cfg.admin = a;
    }

    const json& plugins = v.require(doc, "", "plugins");
    v.object_at(plugins, "/plugins");
    if (plugins.empty()) v.fail("/plugins", "expected at least one plugin instance");
    for (const auto& [name, spec] : plugins.items()) {
        const std::string p = child("/plugins", name);
        if (!is_plain_name(name)) {
            v.fail(p, "\"" + name +
                          "\" is not a usable instance name; use letters, digits, "
                          "'_', '-' and '.', not starting with '.'");
        }
        v.object_at(spec, p);
        v.only_keys(spec, p,
                    {"file", "config", "shared_bytes", "state_file", "outbound", "max_in_flight"});
        plugin_spec plugin;
        plugin.name = name;
        plugin.dir = cfg.plugin_dir;
        plugin.file = plugin_file(v, child(p, "file"), cfg.plugin_dir,
                                  v.string(v.require(spec, p, "file"), child(p, "file")));
        const json* config = v.find(spec, "config");
        plugin.config = config ? v.object_at(*config, child(p, "config")) : json::object();
        plugin.shared_bytes = v.integer_or(spec, p, "shared_bytes", 4096, std::uint64_t{1} << 40,
                                           plugin.shared_bytes);
        if (const json* state = v.find(spec, "state_file")) {
            // With workers, the master alone loads and saves it (shared_state).
            plugin.state_file = resolve(base, v.string(*state, child(p, "state_file")));
        }
        plugin.max_in_flight = v.integer_or(spec, p, "max_in_flight", 0, 100'000'000, 0);
        plugin.outbound.files_relative_to = base;
        if (const json* out = v.find(spec, "outbound")) {
            const std::string op = child(p, "outbound");
            v.object_at(*out, op);
            v.only_keys(*out, op, {"connect_timeout_ms", "io_timeout_ms", "max_idle"});
            using ms = std::chrono::milliseconds;
            constexpr std::uint64_t hour_ms = 3600ull * 1000;
            auto& o = plugin.outbound;
            o.connect_timeout =
                ms{v.integer_or(*out, op, "connect_timeout_ms", 1, hour_ms,
                                static_cast<std::uint64_t>(o.connect_timeout.count()))};
            o.io_timeout = ms{v.integer_or(*out, op, "io_timeout_ms", 1, hour_ms,
                                           static_cast<std::uint64_t>(o.io_timeout.count()))};
            o.max_idle = v.integer_or(*out, op, "max_idle", 0, 100'000, o.max_idle);
        }
        cfg.plugins.push_back(std::move(plugin));
    }

    for (std::size_t i = 0; i < cfg.plugins.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            const auto& a = cfg.plugins[i];
            const auto& b = cfg.plugins[j];
            if (!a.state_file.empty() && a.state_file == b.state_file) {
                v.fail(child(child("/plugins", a.name), "state_file"),
                       "\"" + a.state_file.string() + "\" is also the state_file of /plugins/" +
                           b.name + "; each instance needs its own");
            }
        }
    }

    const json& listeners = v.require(doc, "", "listeners");
    if (!listeners.is_array() || listeners.empty()) {
        v.fail("/listeners", "expected a non-empty array of listeners, got " + describe(listeners));
    }
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        const std::string p = child("/listeners", i);
        const json& spec = v.object_at(listeners[i], p);
        v.only_keys(spec, p,
                    {"name", "address", "port", "framing", "plugin", "chain", "routes", "limits",
                     "access_log", "reuse_port", "tls", "websocket"});
        listener_spec l;
        l.name = v.string(v.require(spec, p, "name"), child(p, "name"));
        if (!is_plain_name(l.name)) {
            v.fail(child(p, "name"),
                   "\"" + l.name +
                       "\" is not a usable listener name; use "
                       "letters, digits, '_', '-' and '.', not starting with '.'");
        }
        const json* address = v.find(spec, "address");
        l.address = address ? v.string(*address, child(p, "address")) : "127.0.0.1";
        if (!is_numeric_address(l.address)) {
            v.fail(child(p, "address"), "\"" + l.address +
                                            "\" is not a numeric IPv4 or IPv6 address "
                                            "(for example \"127.0.0.1\", \"0.0.0.0\" or \"::1\")");
        }
        l.port = static_cast<std::uint16_t>(
            v.integer(v.require(spec, p, "port"), child(p, "port"), 0, 65535));
        if (const json* framing = v.find(spec, "framing")) {
            const std::string f = v.string(*framing, child(p, "framing"));
            if (const auto kind = framing_named(f)) {
                l.framing = *kind;
            } else {
                v.fail(child(p, "framing"),
                       "\"" + f + "\" is not a framing; expected " + framing_names());
            }
        }
        if (const json* routes = v.find(spec, "routes")) {
            if (v.find(spec, "plugin") || v.find(spec, "chain")) {
                v.fail(child(p, v.find(spec, "plugin") ? "plugin" : "chain"),
                       "a listener with \"routes\" names its plugins in each route; remove this "
                       "key, or put it in a route with \"path\": \"/\" to catch the rest");
            }
            if (l.framing != framing_kind::http) {
                v.fail(child(p, "routes"),
                       "routes match HTTP requests (host, path, method); this listener's framing "
                       "is \"" +
                           std::string{to_string(l.framing)} +
                           "\": give it \"framing\": \"http\", or one \"plugin\" or \"chain\" "
                           "instead of routes");
            }
            l.routes = parse_routes(v, *routes, child(p, "routes"), cfg);
        } else {
            l.chain = parse_chain(v, spec, p, cfg);
            l.plugin = l.chain.back();
            if (l.chain.size() > 1 && l.framing == framing_kind::raw) {
                v.fail(child(p, "chain"),
                       "a raw listener hands the whole connection to one plugin, so there is "
                       "no request for a filter to see; use \"plugin\", or a line, oneshot or "
                       "http listener for a chain");
            }
        }
        if (const json* access = v.find(spec, "access_log")) {
            if (!access->is_boolean())
                v.fail(child(p, "access_log"), "expected true or false, got " + describe(*access));
            l.access_log = access->get<bool>();
        }
        if (const json* reuse = v.find(spec, "reuse_port")) {
            if (!reuse->is_boolean())
                v.fail(child(p, "reuse_port"), "expected true or false, got " + describe(*reuse));
            l.reuse_port = reuse->get<bool>();
        }
        if (const json* tls = v.find(spec, "tls"))
            l.tls = parse_tls(v, *tls, child(p, "tls"), base, l.framing);
        if (const json* ws = v.find(spec, "websocket"))
            l.websocket = parse_websocket(v, *ws, child(p, "websocket"), l.framing);
        const json* own_limits = v.find(spec, "limits");
        l.limits = own_limits ? parse_limits(v, *own_limits, child(p, "limits"), cfg.limits, false)
                              : cfg.limits;
        for (std::size_t j = 0; j < cfg.listeners.size(); ++j) {
            const auto& other = cfg.listeners[j];
            if (other.name == l.name) {
                v.fail(child(p, "name"), "duplicate listener name \"" + l.name +
                                             "\", also used by " + child("/listeners", j));
            }
            if (l.port != 0 && other.port == l.port && other.address == l.address) {
                v.fail(child(p, "port"), l.address + ":" + std::to_string(l.port) +
                                             " is already used by " + child("/listeners", j));
            }
        }
        cfg.listeners.push_back(std::move(l));
    }
    return cfg;
}

}  // namespace

std::string dispatch_summary(const listener_spec& l) {
    if (!l.routes.empty()) return std::to_string(l.routes.size()) + " routes";
    if (l.chain.size() <= 1) return "plugin " + l.plugin;
    std::string names;
    for (const auto& name : l.chain) names += (names.empty() ? "" : ", ") + name;
    return "chain " + names;
}

void append_tls_files(const server_config& cfg, std::vector<std::filesystem::path>& files) {
    for (const auto& l : cfg.listeners) {
        if (!l.tls) continue;
        files.push_back(l.tls->certificate);
        files.push_back(l.tls->private_key);
        if (!l.tls->client_ca.empty()) files.push_back(l.tls->client_ca);
    }
}

const plugin_spec* server_config::find_plugin(std::string_view name) const noexcept {
    for (const auto& p : plugins) {
        if (p.name == name) return &p;
    }
    return nullptr;
}

server_config parse_config(std::string_view text, const std::filesystem::path& source,
                           const std::filesystem::path& bundled_plugin_dir) {
    const validator v{source.empty() ? "<built-in>" : source.string()};
    json doc;
    try {
        doc = json::parse(text.begin(), text.end(), structure_checker{v});
    } catch (const json::parse_error& e) {
        std::string what = e.what();
        // Keep nlohmann's explanation, drop its own "[json.exception...] at line x" prefix:
        // the position is given once, in the file:line:column form editors understand.
        if (auto at = what.find("syntax error"); at != std::string::npos) what = what.substr(at);
        throw config_error((source.empty() ? std::string{"<built-in>"} : source.string()) + ":" +
                           line_column(text, e.byte) + ": " + what);
    } catch (const json::exception& e) {
        // Not a syntax error but still the parser's: a number too large for any JSON number
        // type ("number overflow"; found by fuzzing). nlohmann gives no position for it.
        std::string what = e.what();
        if (auto at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
        throw config_error((source.empty() ? std::string{"<built-in>"} : source.string()) +
                           ": invalid JSON: " + what + "; use a smaller number");
    }
    return parse_document(doc, v, source, bundled_plugin_dir);
}

server_config load_config(const std::filesystem::path& file,
                          const std::filesystem::path& bundled_plugin_dir) {
    std::ifstream in{file, std::ios::binary};
    if (!in) {
        throw config_error(file.string() + ": cannot open the configuration file (" +
                           std::strerror(errno) + "); pass an existing file with -c FILE");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), std::filesystem::absolute(file).lexically_normal(),
                        bundled_plugin_dir);
}

std::filesystem::path pid_file_of(const std::filesystem::path& file) {
    const auto base = std::filesystem::absolute(file).parent_path();
    std::ifstream in{file, std::ios::binary};
    // Only the top level matters here: anything deeper is skipped, never built.
    const auto top_level_only = [](int depth, json::parse_event_t, json&) { return depth <= 1; };
    const json doc = json::parse(in, top_level_only, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("pid_file") && doc["pid_file"].is_string()) {
        return resolve(base, doc["pid_file"].get<std::string>());
    }
    return resolve(base, "plugd.pid");
}

server_config default_config(const std::filesystem::path& bundled_plugin_dir) {
    return parse_config(R"({
        "plugins": { "greeting": { "file": "greeting" } },
        "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 8888, "plugin": "greeting" } ]
    })",
                        {}, bundled_plugin_dir);
}

}  // namespace plugd
