// metric_samples: the tests' reader of plugd's /metrics (Prometheus text exposition).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace plugd::test {

/// The samples of one exposition, by series: the name with its labels as plugd writes them
/// (`plugd_requests_total{listener="main",plugin="p"}`).
class metric_samples {
  public:
    /// Parses Prometheus text exposition, where every line is a `# HELP` or `# TYPE` comment
    /// or a sample `name{labels} value`; throws std::runtime_error quoting a line that is
    /// neither.
    static metric_samples parse(const std::string& text);

    /// The value of `series`; nullopt when the exposition has no such series.
    std::optional<double> find(const std::string& series) const;
    /// The value of `series`; throws std::out_of_range naming it when it is absent.
    double at(const std::string& series) const;
    /// Every series and its value, in name order.
    auto begin() const { return values_.begin(); }
    auto end() const { return values_.end(); }

  private:
    std::map<std::string, double> values_;
};

/// GET /metrics from the admin endpoint on 127.0.0.1:`admin_port`, parsed. Throws
/// std::runtime_error when no whole response came, or it is not a 200 with Prometheus text
/// (`text/plain; version=0.0.4`), or a line is not Prometheus text.
metric_samples scrape_metrics(std::uint16_t admin_port);

}  // namespace plugd::test
