// worker_gauges: to and from JSON.
#include "admin/worker_gauges.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace plugd {
namespace {

using json = nlohmann::json;

json version_json(const version_facts& v) {
    return {{"name", v.name}, {"generation", v.generation},
            {"file", v.file}, {"sha", v.content_hash},
            {"abi", v.abi},   {"loaded_at", v.loaded_at_unix_ms}};
}

version_facts version_from(const json& j) {
    return {j.at("name").get<std::string>(), j.at("generation").get<std::uint64_t>(),
            j.at("file").get<std::string>(), j.at("sha").get<std::uint64_t>(),
            j.at("abi").get<std::string>(),  j.at("loaded_at").get<std::int64_t>()};
}

}  // namespace

worker_gauges worker_gauges::of(long pid, const control_facts& facts,
                                const std::vector<shard_snapshot>& shards) {
    worker_gauges g;
    g.pid = pid;
    g.generation = facts.generation;
    g.state = facts.state;
    g.serving = facts.serving;
    g.draining = facts.draining;
    for (const auto& s : shards) {
        for (const auto& l : s.listeners) g.open_connections[l.name] += l.open_connections;
        for (const auto& v : s.versions) {
            auto same = [&](const auto& o) {
                return o.plugin == v.plugin && o.generation == v.generation &&
                       o.retired == v.retired;
            };
            auto it = std::find_if(g.in_flight.begin(), g.in_flight.end(), same);
            if (it == g.in_flight.end()) {
                g.in_flight.push_back(v);
            } else {
                it->in_flight += v.in_flight;
            }
        }
    }
    return g;
}

std::uint64_t worker_gauges::all_open_connections() const noexcept {
    std::uint64_t n = 0;
    for (const auto& [name, open] : open_connections) n += open;
    return n;
}

std::uint64_t worker_gauges::all_in_flight() const noexcept {
    std::uint64_t n = 0;
    for (const auto& v : in_flight) n += v.in_flight;
    return n;
}

std::optional<std::string> why_not_ready(const control_facts& facts,
                                         const std::vector<worker_report>& workers,
                                         std::int64_t now_unix_ms) {
    std::size_t serving = 0;
    for (const auto& w : workers) {
        if (w.serving()) {
            ++serving;
            if (!facts.reloading && w.gauges->generation != facts.generation)
                return "worker " + std::to_string(w.slot.index) + " serves generation " +
                       std::to_string(w.gauges->generation) + ", not " +
                       std::to_string(facts.generation);
            continue;
        }
        const std::int64_t since =
            w.slot.pid > 0 ? w.slot.started_unix_ms : w.slot.down_since_unix_ms;
        if (now_unix_ms - since > worker_respawn_grace_ms)
            return "worker " + std::to_string(w.slot.index) + " has not served for " +
                   std::to_string(now_unix_ms - since) + " ms";
    }
    if (serving == 0) return std::string{"no worker serves yet"};
    return std::nullopt;
}

std::string to_document(const worker_gauges& g) {
    json in_flight = json::array();
    for (const auto& v : g.in_flight) {
        in_flight.push_back({{"plugin", v.plugin},
                             {"generation", v.generation},
                             {"retired", v.retired},
                             {"n", v.in_flight}});
    }
    json serving = json::array(), draining = json::array();
    for (const auto& v : g.serving) serving.push_back(version_json(v));
    for (const auto& v : g.draining) draining.push_back(version_json(v));
    return json{{"pid", g.pid},
                {"generation", g.generation},
                {"state", g.state},
                {"open_connections", g.open_connections},
                {"in_flight", std::move(in_flight)},
                {"serving", std::move(serving)},
                {"draining", std::move(draining)},
                {"stalls", g.stalls},
                {"starvations", g.starvations},
                {"stalled_threads", g.stalled_threads}}
        .dump();
}

std::optional<worker_gauges> parse_gauges(std::string_view document) {
    if (document.empty()) return std::nullopt;
    try {
        const json j = json::parse(document);
        worker_gauges g;
        g.pid = j.at("pid").get<long>();
        g.generation = j.at("generation").get<std::uint64_t>();
        g.state = j.at("state").get<std::string>();
        g.open_connections = j.at("open_connections").get<std::map<std::string, std::uint64_t>>();
        for (const auto& v : j.at("in_flight")) {
            g.in_flight.push_back({v.at("plugin").get<std::string>(),
                                   v.at("generation").get<std::uint64_t>(),
                                   v.at("n").get<std::uint64_t>(), v.at("retired").get<bool>()});
        }
        for (const auto& v : j.at("serving")) g.serving.push_back(version_from(v));
        for (const auto& v : j.at("draining")) g.draining.push_back(version_from(v));
        g.stalls = j.at("stalls").get<std::uint64_t>();
        g.starvations = j.at("starvations").get<std::uint64_t>();
        g.stalled_threads = j.at("stalled_threads").get<std::size_t>();
        return g;
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

}  // namespace plugd
