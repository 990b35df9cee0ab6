// metric_samples: Prometheus text exposition read line by line, strictly: a line the
// format does not allow fails the test that scraped it.
#include "metric_samples.hpp"

#include <regex>
#include <sstream>
#include <stdexcept>

#include "line_client.hpp"

namespace plugd::test {

metric_samples metric_samples::parse(const std::string& text) {
    static const std::regex sample{
        R"(([a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})?) (\S+))"};
    static const std::regex comment{R"(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+)"};
    metric_samples samples;
    std::istringstream lines{text};
    for (std::string l; std::getline(lines, l);) {
        std::smatch m;
        if (std::regex_match(l, comment)) continue;
        if (!std::regex_match(l, m, sample)) throw std::runtime_error("not Prometheus text: " + l);
        samples.values_[m[1].str()] = std::stod(m[4].str());
    }
    return samples;
}

std::optional<double> metric_samples::find(const std::string& series) const {
    const auto found = values_.find(series);
    if (found == values_.end()) return std::nullopt;
    return found->second;
}

double metric_samples::at(const std::string& series) const {
    if (const auto value = find(series)) return *value;
    throw std::out_of_range("/metrics has no series " + series);
}

metric_samples scrape_metrics(std::uint16_t admin_port) {
    const std::string what = "GET /metrics on admin port " + std::to_string(admin_port);
    const auto r = http_request(admin_port, "GET", "/metrics");
    if (!r) throw std::runtime_error(what + ": no whole response");
    if (r->status != 200) {
        throw std::runtime_error(what + ": status " + std::to_string(r->status) + ": " + r->body);
    }
    const auto type = r->headers.find("content-type");
    if (type == r->headers.end() || !type->second.starts_with("text/plain; version=0.0.4")) {
        throw std::runtime_error(what + ": not Prometheus text (Content-Type: " +
                                 (type == r->headers.end() ? "none" : type->second) + ")");
    }
    return metric_samples::parse(r->body);
}

}  // namespace plugd::test
