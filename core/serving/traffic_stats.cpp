// traffic_stats: the names /metrics gives errors, and summing shards' counters.
#include "serving/traffic_stats.hpp"

namespace plugd {

const char* to_string(request_error e) noexcept {
    switch (e) {
        case request_error::exception:
            return "exception";
        case request_error::timeout:
            return "timeout";
        case request_error::busy:
            return "busy";
        case request_error::drain_timeout:
            return "drain_timeout";
        case request_error::write_timeout:
            return "write_timeout";
        case request_error::count:
            break;
    }
    return "unknown";
}

request_stats& request_stats::operator+=(const request_stats& o) noexcept {
    requests += o.requests;
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += o.latency[i];
    latency_sum_us += o.latency_sum_us;
    return *this;
}

canary_stats& canary_stats::operator+=(const canary_stats& o) noexcept {
    requests += o.requests;
    errors += o.errors;
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += o.latency[i];
    return *this;
}

listener_stats& listener_stats::operator+=(const listener_stats& o) noexcept {
    accepted += o.accepted;
    refused += o.refused;
    bad_requests += o.bad_requests;
    slow_requests += o.slow_requests;
    idle_timeouts += o.idle_timeouts;
    not_found += o.not_found;
    method_not_allowed += o.method_not_allowed;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
    tls_full += o.tls_full;
    tls_resumed += o.tls_resumed;
    tls_failed += o.tls_failed;
    topic_deliveries += o.topic_deliveries;
    slow_subscribers_closed += o.slow_subscribers_closed;
    slow_subscribers_unsubscribed += o.slow_subscribers_unsubscribed;
    websocket_upgrades += o.websocket_upgrades;
    websocket_ended += o.websocket_ended;
    websocket_messages_in += o.websocket_messages_in;
    websocket_messages_out += o.websocket_messages_out;
    for (std::size_t i = 0; i < 8; ++i) websocket_closes[i] += o.websocket_closes[i];
    return *this;
}

}  // namespace plugd
