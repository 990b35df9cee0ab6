// admin_report: /status as JSON and /metrics as Prometheus text, from a server_report.
#include "admin/admin_report.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "plugins/plugin_version.hpp"

namespace plugd {
namespace {

using json = nlohmann::json;

std::string hex(std::uint64_t v) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
    return text;
}

json version_json(const version_facts& v, const server_report& r, bool draining) {
    std::uint64_t in_flight = 0;
    for (const auto& s : r.shards) {
        for (const auto& part : s.versions) {
            if (part.plugin == v.name && part.generation == v.generation &&
                part.retired == draining)
                in_flight += part.in_flight;
        }
    }
    return {{"generation", v.generation},
            {"file", v.file},
            {"sha", hex(v.content_hash)},
            {"abi", v.abi},
            {"loaded_at_unix_ms", v.loaded_at_unix_ms},
            {"in_flight", in_flight}};
}

// Sums every shard's part of the same listener (or listener and plugin).
template <class Part, class Key, class Stats>
std::map<Key, Stats> sum(const std::vector<shard_snapshot>& shards,
                         std::vector<Part> shard_snapshot::*parts, Key (*key)(const Part&),
                         Stats Part::*stats) {
    std::map<Key, Stats> total;
    for (const auto& s : shards) {
        for (const auto& p : s.*parts) total[key(p)] += p.*stats;
    }
    return total;
}

std::string listener_key(const shard_snapshot::listener_part& p) {
    return p.name;
}
std::tuple<std::string, std::string, std::string, std::string> request_key(
    const shard_snapshot::request_part& p) {
    return {p.listener, p.route, p.plugin, p.generation};
}

// Builds the exposition text: each metric's HELP and TYPE once, then its samples.
class exposition {
  public:
    void family(const char* name, const char* type, const char* help) {
        ((((text_ += "# HELP ") += name) += ' ') += help) += '\n';
        ((((text_ += "# TYPE ") += name) += ' ') += type) += '\n';
    }
    void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
        line(name, labels, std::to_string(value));
    }
    void sample(std::string_view name, std::string_view labels, double value) {
        char number[32];
        std::snprintf(number, sizeof number, "%.6f", value);
        line(name, labels, number);
    }
    std::string take() { return std::move(text_); }

  private:
    void line(std::string_view name, std::string_view labels, std::string_view value) {
        text_ += name;
        if (!labels.empty()) ((text_ += '{') += labels) += '}';
        ((text_ += ' ') += value) += '\n';
    }
    std::string text_;
};

// Names are plain (letters, digits, '_', '-', '.'), so label values need no escaping.
std::string label(std::string_view key, std::string_view value) {
    std::string out{key};
    ((out += "=\"") += value) += '"';
    return out;
}

// A request series' labels: the route only on a listener with routes, the generation only
// for the requests of either side of a canary.
std::string request_labels(
    const std::tuple<std::string, std::string, std::string, std::string>& key) {
    const auto& [listener, route, plugin, generation] = key;
    std::string labels = label("listener", listener) + ",";
    if (!route.empty()) labels += label("route", route) + ",";
    labels += label("plugin", plugin);
    if (!generation.empty()) (labels += ',') += label("generation", generation);
    return labels;
}

json side_json(const canary_side& side) {
    json j{{"generation", side.generation},
           {"requests", side.requests},
           {"errors", side.errors},
           {"error_rate", side.error_rate()},
           {"timed_requests", side.timed()}};
    const auto p99 = side.p99_ms();
    j["p99_ms"] = p99 ? json(*p99) : json(nullptr);
    return j;
}

const char* sticky_name(canary_sticky s) {
    switch (s) {
        case canary_sticky::none:
            return "none";
        case canary_sticky::peer:
            return "peer";
        case canary_sticky::header:
            return "header";
    }
    return "none";
}

// /status's canary: the one running (its figures summed from the shards now) or the last
// one decided (its figures at the verdict).
json canary_json(const canary_facts& c, const server_report& r) {
    const auto figures =
        c.state == "running" ? canary_figures(r.shards, c.generation, c.judged) : c.figures;
    json instances = json::object();
    for (const auto& f : figures)
        instances[f.name] = {{"canary", side_json(f.canary)}, {"serving", side_json(f.serving)}};
    const canary_settings& s = c.settings;
    json j{{"generation", c.generation},
           {"serving_generation", c.serving_generation},
           {"state", c.state},
           {"percent", c.percent},
           {"sticky", sticky_name(s.sticky)},
           {"started_at_unix_ms", c.started_unix_ms},
           {"instances", std::move(instances)},
           {"settings",
            {{"min_requests", s.min_requests},
             {"min_duration_ms", s.min_duration.count()},
             {"max_error_ratio", s.max_error_ratio},
             {"max_error_rate", s.max_error_rate},
             {"max_p99_ratio", s.max_p99_ratio},
             {"max_duration_ms", s.max_duration.count()}}}};
    if (s.sticky == canary_sticky::header) j["sticky_header"] = s.sticky_header;
    if (c.state == "running") {
        j["elapsed_ms"] = r.now_unix_ms - c.started_unix_ms;
    } else {
        j["ended_at_unix_ms"] = c.ended_unix_ms;
        j["outcome"] = c.outcome;
    }
    return j;
}

}  // namespace

version_facts version_facts::of(const plugin_version& v) {
    return {v.spec().name,    v.generation(),      v.spec().file.string(),
            v.content_hash(), v.abi_fingerprint(), v.loaded_at_unix_ms()};
}

std::string status_json(const server_report& r) {
    std::map<std::string, std::uint64_t> open;
    for (const auto& s : r.shards) {
        for (const auto& l : s.listeners) open[l.name] += l.open_connections;
    }
    json listeners = json::array();
    const control_facts& f = *r.facts;
    for (const auto& l : f.listeners) {
        json entry = {{"name", l.name},
                      {"address", l.address},
                      {"port", l.port},
                      {"framing", to_string(l.framing)}};
        if (l.routes.empty()) {
            entry["plugin"] = l.plugin;
            if (l.chain.size() > 1) entry["chain"] = l.chain;
        } else {
            // The serving generation's route table, in server.json's order.
            json routes = json::array();
            for (const auto& route : l.routes) {
                json r = {{"route", route.label}, {"path", route.path}, {"chain", route.chain}};
                if (!route.host.empty()) r["host"] = route.host;
                if (!route.methods.empty()) r["methods"] = route.methods;
                routes.push_back(std::move(r));
            }
            entry["routes"] = std::move(routes);
        }
        if (const auto c = f.certificates.find(l.name); c != f.certificates.end()) {
            entry["certificate"] = {{"subject", c->second.subject},
                                    {"dns_names", c->second.dns_names},
                                    {"ip_addresses", c->second.ip_addresses},
                                    {"serial", c->second.serial},
                                    {"not_after_unix", c->second.not_after_unix},
                                    {"not_after", iso8601_utc(c->second.not_after_unix)}};
        }
        entry["open_connections"] = open[l.name];
        listeners.push_back(std::move(entry));
    }
    // A master loads no plugin: its workers say what they serve (the first one serving
    // the master's generation; they all load the same files).
    const std::vector<version_facts>* serving = &f.serving;
    const std::vector<version_facts>* draining = &f.draining;
    for (const auto& w : r.workers) {
        if (w.serving() && w.gauges->generation == f.generation) {
            serving = &w.gauges->serving;
            draining = &w.gauges->draining;
            break;
        }
    }
    json plugins = json::object();
    for (const auto& v : *serving) {
        json entry = version_json(v, r, false);
        entry["draining"] = json::array();
        plugins[v.name] = std::move(entry);
    }
    if (f.canary && f.canary->state == "running") {
        for (const auto& v : f.canary->versions) {
            if (const auto it = plugins.find(v.name); it != plugins.end())
                (*it)["canary"] = version_json(v, r, false);
        }
    }
    for (const auto& v : *draining) {
        auto it = plugins.find(v.name);
        if (it == plugins.end()) {
            // An instance a reload removed: only its draining versions remain.
            it = plugins.emplace(v.name, json{{"draining", json::array()}}).first;
        }
        (*it)["draining"].push_back(version_json(v, r, true));
    }
    json status{{"version", PLUGD_VERSION},
                {"pid", ::getpid()},
                {"state", f.state},
                {"generation", f.generation},
                {"started_at_unix_ms", f.started_unix_ms},
                {"uptime_seconds", (r.now_unix_ms - f.started_unix_ms) / 1000},
                {"reloads", {{"ok", f.reloads_ok}, {"failed", f.reloads_failed}}},
                {"listeners", std::move(listeners)},
                {"plugins", std::move(plugins)}};
    if (f.canary) status["canary"] = canary_json(*f.canary, r);
    if (!r.workers.empty()) {
        json workers = json::array();
        for (const auto& w : r.workers) {
            const bool published = w.serving();
            json entry{{"index", w.slot.index},
                       {"pid", w.slot.pid},
                       {"up", published},
                       {"generation", published ? w.gauges->generation : 0},
                       {"state", published        ? w.gauges->state
                                 : w.slot.pid > 0 ? "starting"
                                                  : "down"},
                       {"started_at_unix_ms", w.slot.started_unix_ms},
                       {"restarts", w.slot.restarts},
                       {"open_connections", published ? w.gauges->all_open_connections() : 0},
                       {"in_flight", published ? w.gauges->all_in_flight() : 0}};
            workers.push_back(std::move(entry));
        }
        status["workers"] = std::move(workers);
    }
    return status.dump(2) + "\n";
}

std::string metrics_text(const server_report& r) {
    const control_facts& f = *r.facts;
    exposition m;
    m.family("plugd_info", "gauge", "Always 1; the version label says which plugd runs.");
    m.sample("plugd_info", label("version", PLUGD_VERSION), std::uint64_t{1});
    m.family("plugd_start_time_seconds", "gauge", "When this plugd started, Unix time.");
    m.sample("plugd_start_time_seconds", "", static_cast<double>(f.started_unix_ms) / 1000);
    m.family("plugd_generation", "gauge", "The configuration generation serving now.");
    m.sample("plugd_generation", "", f.generation);
    m.family("plugd_draining", "gauge", "1 while a stop's shutdown_delay_ms runs.");
    m.sample("plugd_draining", "", std::uint64_t{f.state != "serving"});
    m.family("plugd_canary_generation", "gauge",
             "The generation of the canary running next to plugd_generation; 0 when none runs.");
    m.sample("plugd_canary_generation", "",
             f.canary && f.canary->state == "running" ? f.canary->generation : std::uint64_t{0});
    m.family("plugd_reloads_total", "counter", "Reloads by outcome (start-up not counted).");
    m.sample("plugd_reloads_total", label("outcome", "ok"), f.reloads_ok);
    m.sample("plugd_reloads_total", label("outcome", "failed"), f.reloads_failed);

    const auto listeners = sum(r.shards, &shard_snapshot::listeners, &listener_key,
                               &shard_snapshot::listener_part::stats);
    std::map<std::string, std::uint64_t> open;
    for (const auto& s : r.shards) {
        for (const auto& l : s.listeners) open[l.name] += l.open_connections;
    }
    struct listener_counter {
        const char* name;
        const char* type;
        const char* help;
        std::uint64_t listener_stats::*field;
    };
    static constexpr listener_counter counters[] = {
        {"plugd_connections_accepted_total", "counter", "Connections accepted.",
         &listener_stats::accepted},
        {"plugd_connections_refused_total", "counter",
         "Connections closed at once: at max_connections with none idle.",
         &listener_stats::refused},
        {"plugd_bad_requests_total", "counter",
         "Requests refused as malformed or too large (400, 413, 431, ERR request too large).",
         &listener_stats::bad_requests},
        {"plugd_slow_requests_total", "counter",
         "HTTP requests not received whole within request_timeout_ms (408).",
         &listener_stats::slow_requests},
        {"plugd_idle_timeouts_total", "counter",
         "Connections closed after idle_timeout_ms without a request.",
         &listener_stats::idle_timeouts},
        {"plugd_unrouted_requests_total", "counter",
         "Requests of a listener with routes that no route took (404).",
         &listener_stats::not_found},
        {"plugd_method_not_allowed_total", "counter",
         "Requests of a listener with routes whose host and path a route took but not their "
         "method (405).",
         &listener_stats::method_not_allowed},
        {"plugd_received_bytes_total", "counter", "Bytes read from clients.",
         &listener_stats::bytes_in},
        {"plugd_sent_bytes_total", "counter", "Bytes written to clients.",
         &listener_stats::bytes_out},
    };
    m.family("plugd_connections_open", "gauge", "Connections open now.");
    for (const auto& [name, stats] : listeners) {
        m.sample("plugd_connections_open", label("listener", name), open[name]);
    }
    for (const auto& c : counters) {
        m.family(c.name, c.type, c.help);
        for (const auto& [name, stats] : listeners) {
            m.sample(c.name, label("listener", name), stats.*c.field);
        }
    }

    m.family("plugd_tls_handshakes_total", "counter",
             "TLS handshakes by outcome: full, resumed (a session ticket), failed (including "
             "timed out and plaintext sent to a TLS port).");
    for (const auto& [name, stats] : listeners) {
        if (stats.tls_full + stats.tls_resumed + stats.tls_failed == 0) continue;
        const std::string l = label("listener", name);
        m.sample("plugd_tls_handshakes_total", l + "," + label("outcome", "full"), stats.tls_full);
        m.sample("plugd_tls_handshakes_total", l + "," + label("outcome", "resumed"),
                 stats.tls_resumed);
        m.sample("plugd_tls_handshakes_total", l + "," + label("outcome", "failed"),
                 stats.tls_failed);
    }

    std::uint64_t publishes = 0;
    for (const auto& s : r.shards) publishes += s.topic_publishes;
    m.family("plugd_topic_publishes_total", "counter",
             "Messages published to topics (context::topics), from any thread.");
    m.sample("plugd_topic_publishes_total", "", publishes);
    // Only listeners whose connections subscribed: the others have nothing to say.
    const auto subscribed = [](const listener_stats& s) {
        return s.topic_deliveries + s.slow_subscribers_closed + s.slow_subscribers_unsubscribed > 0;
    };
    m.family("plugd_topic_deliveries_total", "counter",
             "Topic messages delivered to the listener's subscribers (returned by next()).");
    for (const auto& [name, stats] : listeners) {
        if (subscribed(stats))
            m.sample("plugd_topic_deliveries_total", label("listener", name),
                     stats.topic_deliveries);
    }
    m.family("plugd_topic_slow_subscribers_total", "counter",
             "Subscribers that fell more than max_queued_messages behind on a topic, by what "
             "slow_subscriber did: closed, or unsubscribed from that topic.");
    for (const auto& [name, stats] : listeners) {
        if (!subscribed(stats)) continue;
        const std::string l = label("listener", name);
        m.sample("plugd_topic_slow_subscribers_total", l + "," + label("action", "close"),
                 stats.slow_subscribers_closed);
        m.sample("plugd_topic_slow_subscribers_total", l + "," + label("action", "unsubscribe"),
                 stats.slow_subscribers_unsubscribed);
    }

    // Only with topics.redis: without it there is no bridge to report on.
    topic_bridge_stats redis;
    for (const auto& s : r.shards) redis.add(s.redis);
    if (redis.bridges > 0) {
        m.family("plugd_topic_redis_up", "gauge",
                 "1 while the topic bridge's connections to Redis are ready (with workers: "
                 "every worker's), else 0.");
        m.sample("plugd_topic_redis_up", "", std::uint64_t{redis.up == redis.bridges});
        m.family("plugd_topic_redis_messages_total", "counter",
                 "Topic messages through Redis: out, published here and acknowledged by Redis; "
                 "in, published by another process and delivered here.");
        m.sample("plugd_topic_redis_messages_total", label("direction", "out"), redis.messages_out);
        m.sample("plugd_topic_redis_messages_total", label("direction", "in"), redis.messages_in);
        m.family("plugd_topic_redis_dropped_total", "counter",
                 "Topic messages the bridge dropped: pending_full, not sent because "
                 "topics.redis.max_pending were waiting for Redis already; malformed, received "
                 "on our channels but not written by a plugd (or above max_message_bytes).");
        m.sample("plugd_topic_redis_dropped_total", label("reason", "pending_full"),
                 redis.dropped_pending_full);
        m.sample("plugd_topic_redis_dropped_total", label("reason", "malformed"),
                 redis.dropped_malformed);
        m.family("plugd_topic_redis_reconnects_total", "counter",
                 "Connection attempts to Redis after a connection failed or was refused.");
        m.sample("plugd_topic_redis_reconnects_total", "", redis.reconnects);
    }

    // Only listeners that had a WebSocket session.
    m.family("plugd_websocket_upgrades_total", "counter",
             "Upgrade requests answered 101 Switching Protocols: WebSocket sessions begun.");
    m.family("plugd_websocket_sessions_open", "gauge", "WebSocket sessions open now.");
    m.family("plugd_websocket_messages_total", "counter",
             "WebSocket messages, from the clients (in) and to them (out).");
    m.family("plugd_websocket_closes_total", "counter",
             "WebSocket sessions ended, by close code (sent or received; 1006 and codes "
             "without a series of their own count as other).");
    for (const auto& [name, stats] : listeners) {
        if (stats.websocket_upgrades == 0) continue;
        const std::string l = label("listener", name);
        m.sample("plugd_websocket_upgrades_total", l, stats.websocket_upgrades);
        m.sample(
            "plugd_websocket_sessions_open", l,
            stats.websocket_upgrades - std::min(stats.websocket_upgrades, stats.websocket_ended));
        m.sample("plugd_websocket_messages_total", l + "," + label("direction", "in"),
                 stats.websocket_messages_in);
        m.sample("plugd_websocket_messages_total", l + "," + label("direction", "out"),
                 stats.websocket_messages_out);
        for (std::size_t i = 0; i < 8; ++i) {
            const std::uint16_t code = websocket_close_codes[i];
            m.sample("plugd_websocket_closes_total",
                     l + "," + label("code", code ? std::to_string(code) : std::string{"other"}),
                     stats.websocket_closes[i]);
        }
    }

    if (!f.certificates.empty()) {
        m.family("plugd_tls_certificate_expiry_seconds", "gauge",
                 "Seconds until the listener's certificate expires (negative: expired).");
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        for (const auto& [name, c] : f.certificates) {
            m.sample("plugd_tls_certificate_expiry_seconds", label("listener", name),
                     static_cast<double>(c.not_after_unix - now));
        }
    }

    const auto requests = sum(r.shards, &shard_snapshot::requests, &request_key,
                              &shard_snapshot::request_part::stats);
    m.family("plugd_requests_total", "counter",
             "Requests handled, by listener, route (on listeners with routes) and plugin.");
    for (const auto& [key, stats] : requests) {
        m.sample("plugd_requests_total", request_labels(key), stats.requests);
    }
    m.family("plugd_request_errors_total", "counter",
             "Requests that did not end with the handler's reply, by kind.");
    for (const auto& [key, stats] : requests) {
        const std::string labels = request_labels(key);
        for (std::size_t k = 0; k < stats.errors.size(); ++k) {
            m.sample("plugd_request_errors_total",
                     labels + "," + label("kind", to_string(static_cast<request_error>(k))),
                     stats.errors[k]);
        }
    }
    m.family("plugd_request_duration_seconds", "histogram",
             "Time from a whole request received to its reply ready (the handler's time).");
    for (const auto& [key, stats] : requests) {
        const std::string labels = request_labels(key);
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < stats.latency.size(); ++b) {
            cumulative += stats.latency[b];
            char bound[32] = "+Inf";
            if (b < latency_bounds_us.size())
                std::snprintf(bound, sizeof bound, "%g", latency_bounds_us[b] / 1e6);
            m.sample("plugd_request_duration_seconds_bucket", labels + "," + label("le", bound),
                     cumulative);
        }
        m.sample("plugd_request_duration_seconds_sum", labels,
                 static_cast<double>(stats.latency_sum_us) / 1e6);
        m.sample("plugd_request_duration_seconds_count", labels, stats.requests);
    }

    std::map<std::tuple<std::string, std::uint64_t>, std::uint64_t> in_flight;
    for (const auto& s : r.shards) {
        for (const auto& v : s.versions) in_flight[{v.plugin, v.generation}] += v.in_flight;
    }
    m.family("plugd_requests_in_flight", "gauge",
             "Requests running now, by plugin instance and the generation of its version.");
    for (const auto& [key, n] : in_flight) {
        m.sample("plugd_requests_in_flight",
                 label("plugin", std::get<0>(key)) + "," +
                     label("generation", std::to_string(std::get<1>(key))),
                 n);
    }
    m.family("plugd_stalls_total", "counter",
             "Times a worker thread's event loop did not come back within stall_warn_ms.");
    m.sample("plugd_stalls_total", "", r.stalls);
    m.family("plugd_cpu_starved_total", "counter",
             "Times a worker thread's event loop did not come back within stall_warn_ms because "
             "the thread waited for a CPU (runnable, not scheduled); not counted as stalls.");
    m.sample("plugd_cpu_starved_total", "", r.starvations);
    std::uint64_t versions_draining = f.draining.size();
    for (const auto& w : r.workers) {
        if (w.serving())
            versions_draining =
                std::max<std::uint64_t>(versions_draining, w.gauges->draining.size());
    }
    m.family("plugd_plugin_versions_draining", "gauge",
             "Replaced plugin versions still loaded (requests or leases hold them).");
    m.sample("plugd_plugin_versions_draining", "", versions_draining);
    if (!r.workers.empty()) {
        m.family("plugd_worker_up", "gauge",
                 "1 while a worker process serves in this slot, 0 while it is down or starting.");
        for (const auto& w : r.workers) {
            m.sample("plugd_worker_up", label("worker", std::to_string(w.slot.index)),
                     std::uint64_t{w.serving()});
        }
        m.family("plugd_worker_restarts_total", "counter",
                 "Times the master started a worker again in this slot after it exited.");
        for (const auto& w : r.workers) {
            m.sample("plugd_worker_restarts_total", label("worker", std::to_string(w.slot.index)),
                     w.slot.restarts);
        }
        m.family("plugd_worker_generation", "gauge",
                 "The generation the worker in this slot serves (0 while none serves).");
        for (const auto& w : r.workers) {
            m.sample("plugd_worker_generation", label("worker", std::to_string(w.slot.index)),
                     w.serving() ? w.gauges->generation : 0);
        }
    }
    return m.take();
}

}  // namespace plugd
