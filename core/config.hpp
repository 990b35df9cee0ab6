// server.json: the validated, resolved server configuration, and the parser that makes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <plugd/context.hpp>

#include "framing/framings.hpp"

namespace plugd {

/// `log` in server.json: what the server log keeps and how it writes it.
struct log_settings {
    plugd::log_level level = plugd::log_level::info;
    bool json = false;  ///< one JSON object per line instead of text
    friend bool operator==(const log_settings&, const log_settings&) = default;
};

/// What happens to a subscriber that falls more than max_queued_messages behind on a topic
/// (`limits.slow_subscriber`).
enum class slow_subscriber_policy : std::uint8_t {
    close,        ///< the connection is closed (its next() returns closed, 1008)
    unsubscribe,  ///< it is unsubscribed from that topic, and says nothing
};

/// `limits` in server.json (and `/listeners/N/limits`, which overrides the per-connection
/// ones for that listener). Every value is validated to be usable.
struct limits {
    std::size_t max_connections = 10000;  ///< per listener, shared out evenly across threads
    std::size_t max_request_bytes = 65536;
    std::size_t max_output_bytes = 1 << 20;  ///< replies buffered before the server stops reading
    std::chrono::milliseconds idle_timeout{60000};     ///< no complete request: close
    std::chrono::milliseconds request_timeout{30000};  ///< handler cancelled, "ERR timeout"
    std::chrono::milliseconds write_timeout{30000};    ///< client not reading: close
    /// Messages of a topic a subscriber may have queued (published to it, not yet moved
    /// past by its next()); one more and slow_subscriber applies.
    std::size_t max_queued_messages = 1024;
    slow_subscriber_policy slow_subscriber = slow_subscriber_policy::close;
    // Server-wide only:
    std::chrono::milliseconds shutdown_timeout{5000};
    /// On a stop, how long /healthz answers 503 (and HTTP replies say `Connection: close`)
    /// while everything still serves, before the listeners close: time for load balancers
    /// to move new traffic away. 0: close at once.
    std::chrono::milliseconds shutdown_delay{0};
    /// A worker thread whose event loop has not come back for this long is reported as
    /// stalled, naming the plugin running there.
    std::chrono::milliseconds stall_warn{200};
    std::chrono::milliseconds reload_drain_timeout{30000};
    friend bool operator==(const limits&, const limits&) = default;
};

/// `/plugins/<name>/outbound`: limits of the instance's outbound connections.
struct outbound_settings {
    std::chrono::milliseconds connect_timeout{1000};  ///< resolving and connecting
    std::chrono::milliseconds io_timeout{5000};       ///< each read or write
    std::size_t max_idle = 32;                        ///< pooled per host:port and worker thread
    /// What relative TLS file names (tls_options) are resolved against: server.json's
    /// directory; empty: the working directory.
    std::filesystem::path files_relative_to;
    friend bool operator==(const outbound_settings&, const outbound_settings&) = default;
};

/// `/plugins/<name>`: one plugin instance.
struct plugin_spec {
    std::string name;            ///< the instance name (the key under `/plugins`)
    std::filesystem::path file;  ///< resolved: inside plugin_dir
    std::filesystem::path dir;   ///< the plugin_dir it must stay inside
    nlohmann::json config;       ///< handed to the plugin as-is; an empty object if absent
    std::size_t shared_bytes = std::size_t{64} << 20;  ///< budget of the instance's shared state
    std::filesystem::path state_file;  ///< resolved; empty: shared state is not persisted
    outbound_settings outbound;
    /// Requests this instance may run at once in this process (every request whose chain
    /// holds it counts, from its start to its end); past it a request is refused at once
    /// with 503 / "ERR busy". 0: no cap.
    std::size_t max_in_flight = 0;
    friend bool operator==(const plugin_spec&, const plugin_spec&) = default;
};

/// `/listeners/N/routes/M`: which requests of an http listener go to which chain.
struct route_spec {
    std::string label;  ///< its `name`, or its index ("0", "1", ...) when it has none
    std::string host;   ///< lower case: "api.example.com", "*.example.com", or empty: any
    std::string path;   ///< exact, or a prefix when it ends with '/'
    std::vector<std::string> methods;  ///< upper case; empty: any
    /// The instances a request runs through: filters, then the final plugin (`plugin` in
    /// server.json is a chain of one).
    std::vector<std::string> chain;
    friend bool operator==(const route_spec&, const route_spec&) = default;
};

/// `/listeners/N/tls`: the listener speaks TLS. The files are read (and checked) when a
/// generation is prepared: at start, at each reload and by `-t`, so replacing them and
/// reloading rotates the certificate.
struct tls_settings {
    std::filesystem::path certificate;  ///< resolved: PEM, the server's certificate then its chain
    std::filesystem::path private_key;  ///< resolved: PEM, not encrypted
    /// Resolved: PEM certificates of the CAs a client's certificate must chain to; set,
    /// every client must present one. Empty: none is asked for.
    std::filesystem::path client_ca;
    bool tls13_only = false;   ///< `min_version` "1.3"; else "1.2" (never lower)
    std::string ciphers;       ///< TLS 1.2 cipher list (OpenSSL syntax); empty: plugd's defaults
    std::string ciphersuites;  ///< TLS 1.3 suites; empty: OpenSSL's defaults
    /// Protocols offered to ALPN, in preference order; default ["http/1.1"] on http
    /// listeners, none elsewhere.
    std::vector<std::string> alpn;
    /// How often the session ticket keys change (see tls/ticket_keys); a ticket resumes
    /// for at most this long.
    std::chrono::milliseconds ticket_key_rotation{3'600'000};
    friend bool operator==(const tls_settings&, const tls_settings&) = default;
};

/// `/listeners/N/websocket`: the WebSocket sessions of an http listener
/// (handler::serve_session). Read at each use: a reload applies new values to open sessions.
struct websocket_settings {
    /// A session quiet this long (nothing from the client) gets a ping; 0: no pings.
    std::chrono::milliseconds ping_interval{25000};
    /// A session with nothing from the client (not even a pong) this long is closed (1000).
    std::chrono::milliseconds idle_timeout{60000};
    std::size_t max_message_bytes = 65536;  ///< a larger message from a client: closed (1009)
    friend bool operator==(const websocket_settings&, const websocket_settings&) = default;
};

/// `/listeners/N`: one address the server accepts on, routed to a chain of plugin
/// instances, or (http) to one chain per route.
struct listener_spec {
    std::string name;
    std::string address;     ///< a numeric IPv4 or IPv6 address
    std::uint16_t port = 0;  ///< 0: an ephemeral port chosen at bind time
    framing_kind framing = framing_kind::line;
    /// The final instance of `chain`, which answers: what logs and /metrics name. Empty on
    /// a listener with routes.
    std::string plugin;
    /// `plugin` (a chain of one) or `chain`: filters, then the final instance. Empty on a
    /// listener with routes.
    std::vector<std::string> chain;
    std::vector<route_spec> routes;  ///< http only; none: every request goes to `chain`
    struct limits limits;            ///< the server's limits with this listener's overrides applied
    bool access_log = false;         ///< a log line per request
    /// Other processes may listen on the same port (SO_REUSEPORT across processes); off:
    /// a port in use is an error.
    bool reuse_port = false;
    std::optional<tls_settings> tls;  ///< none: plaintext
    websocket_settings websocket;     ///< http listeners
    friend bool operator==(const listener_spec&, const listener_spec&) = default;
};

/// `admin` in server.json: the HTTP endpoint for health checks, status, metrics and reloads.
struct admin_settings {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;     ///< 0: an ephemeral port, logged at start
    bool allow_remote = false;  ///< a non-loopback address is refused unless set
    /// `token_file`: a file only plugd's user may read; empty: none (loopback only).
    std::filesystem::path token_file;
    /// The bearer token read from token_file when the config was read. Set: every endpoint
    /// but /healthz requires `Authorization: Bearer <token>`. Never logged.
    std::string token;
    friend bool operator==(const admin_settings&, const admin_settings&) = default;
};

/// How a canary reload splits new requests between the generation serving and the canary.
enum class canary_sticky : std::uint8_t {
    none,    ///< each new request (or session) is drawn at random
    peer,    ///< by the client's address: one client, one side
    header,  ///< by the value of a request header (`sticky_header`); by peer without one
};

/// `canary` in server.json: how a canary reload (`plugd -s reload --canary PERCENT`) is
/// judged and split. The settings of the configuration the canary loads apply to it.
struct canary_settings {
    /// Requests each changed instance's canary side must have had before a promotion (and
    /// each side before their p99s are compared).
    std::uint64_t min_requests = 500;
    std::chrono::milliseconds min_duration{30000};  ///< the shortest canary that is promoted
    /// The error bound is broken when the canary's error rate exceeds both this many times
    /// the old side's and max_error_rate.
    double max_error_ratio = 2.0;
    double max_error_rate = 0.01;
    double max_p99_ratio = 1.5;  ///< canary's handler-time p99 over the old side's
    std::chrono::milliseconds max_duration{600000};  ///< undecided by then: rolled back
    canary_sticky sticky = canary_sticky::none;
    std::string sticky_header;  ///< with canary_sticky::header: the field's name
    friend bool operator==(const canary_settings&, const canary_settings&) = default;
};

/// `topics.redis` in server.json: the bridge that carries every topic through Redis pub/sub
/// to the other processes sharing that Redis (host/topic_bridge).
struct redis_settings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    /// A file only plugd's user may read, holding the password on its first line (sent as
    /// `AUTH`); empty: none.
    std::filesystem::path password_file;
    std::string password;  ///< read from password_file when the config was read; never logged
    std::string channel_prefix = "plugd:";  ///< topic T is channel <prefix>T
    std::size_t max_pending = 10000;  ///< messages waiting for Redis; past it they are dropped
    friend bool operator==(const redis_settings&, const redis_settings&) = default;
};

/// `topics` in server.json: the process's topics (context::topics). Changing it needs a
/// restart.
struct topics_settings {
    std::size_t max_message_bytes = 65536;  ///< the largest message topics::publish takes
    std::optional<redis_settings> redis;    ///< none: topics are per process
    friend bool operator==(const topics_settings&, const topics_settings&) = default;
};

struct server_config {
    std::filesystem::path source;  ///< the file it came from; empty for the built-in default
    unsigned threads = 0;          ///< 0: one per core
    unsigned offload_threads = 0;  ///< threads for context::offload; 0: one per core
    unsigned workers = 1;          ///< worker processes; 2 or more: a supervising master
    bool supervise = false;        ///< a master even with one worker
    /// Supervised: this many worker crashes within rollback_window of a reload roll every
    /// worker back to the last generation that ran without crashing; 0: never.
    unsigned rollback_after_crashes = 3;
    std::chrono::milliseconds rollback_window{60000};
    std::size_t offload_queue = 1024;  ///< offloaded jobs that may wait for a thread
    std::filesystem::path plugin_dir;
    std::filesystem::path pid_file;
    std::string user;  ///< empty: keep the user plugd was started as
    std::vector<plugin_spec> plugins;
    std::vector<listener_spec> listeners;
    struct limits limits;
    topics_settings topics;
    log_settings log;
    std::optional<admin_settings> admin;  ///< none: no admin endpoint
    canary_settings canary;

    const plugin_spec* find_plugin(std::string_view name) const noexcept;
};

/// What `l` sends its requests to, for log lines: "plugin greeting", "chain auth, greeting"
/// or "3 routes".
std::string dispatch_summary(const listener_spec& l);

/// Calls `f(chain, where)` for every chain of `l` (its own, or each route's), `where`
/// naming it for messages ("/listeners/0/routes/2").
template <class F>
void for_each_chain(const listener_spec& l, std::size_t index, F&& f) {
    const std::string at = "/listeners/" + std::to_string(index);
    if (l.routes.empty()) {
        f(l.chain, at);
        return;
    }
    for (std::size_t i = 0; i < l.routes.size(); ++i)
        f(l.routes[i].chain, at + "/routes/" + std::to_string(i));
}

/// Appends the files of every TLS listener of `cfg` (certificate, key, client CAs): what
/// `--watch` watches besides the config and the plugins.
void append_tls_files(const server_config& cfg, std::vector<std::filesystem::path>& files);

/// A configuration that cannot be used. `what()` is the whole user-facing message: the
/// file, the line and column or the JSON path, what is wrong and what is expected.
class config_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// How deeply arrays and objects may nest in server.json (plugin configs included). Far
/// more than any configuration needs; deep enough input is only ever an accident or an
/// attack, and refusing it keeps every later copy and message of the config bounded.
inline constexpr std::size_t max_config_depth = 64;

/// Reads and validates `file`. Relative paths in it resolve against the file's folder;
/// `bundled_plugin_dir` is the plugin_dir when the file names none. Throws config_error.
server_config load_config(const std::filesystem::path& file,
                          const std::filesystem::path& bundled_plugin_dir);

/// Validates `text` as if read from `source` (used in messages and to resolve paths).
server_config parse_config(std::string_view text, const std::filesystem::path& source,
                           const std::filesystem::path& bundled_plugin_dir);

/// The pid_file `file` names, read leniently: `plugd -s reload` must find the running
/// server even when the edited file no longer validates (that is when the reload's error
/// matters most). Falls back to the default next to the file.
std::filesystem::path pid_file_of(const std::filesystem::path& file);

/// The configuration used when there is no server.json: greeting on 127.0.0.1:8888, line
/// framing, paths relative to the working directory.
server_config default_config(const std::filesystem::path& bundled_plugin_dir);

}  // namespace plugd
