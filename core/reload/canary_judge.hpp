// canary_judge: whether a canary is promoted, rolled back or goes on, decided from both
// sides' figures of every plugin instance it changed, and how the outcome reads. Pure: the
// server (one process) and the supervising master (summed over its workers) decide alike.
// The rule and its settings: docs/operations.md, "Canary reloads".
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "serving/traffic_stats.hpp"

namespace plugd {

/// One side of a canary for one instance, summed over shards (and workers).
struct canary_side {
    std::uint64_t generation = 0;
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    std::array<std::uint64_t, canary_latency::buckets> latency{};

    /// Requests with a handler time (sessions and raw connections have none).
    std::uint64_t timed() const noexcept;
    /// errors / requests; 0 without requests.
    double error_rate() const noexcept;
    /// The handler time below which 99% of the timed requests fall, in ms (the middle of
    /// its histogram bucket, about 6% wide); none without timed requests.
    std::optional<double> p99_ms() const noexcept;
    /// The low end of the p99's confidence interval (the order statistic `z` standard
    /// deviations below the p99's rank): with few timed requests, the p99 is nearly their
    /// maximum, one scheduler hiccup; this is what it is surely above. None untimed.
    std::optional<double> p99_low_ms(double z) const noexcept;
    void add(const canary_stats& s) noexcept;
};

/// Both sides of one instance the canary changed.
struct canary_instance {
    std::string name;
    canary_side serving;  ///< the generation serving the rest of the requests
    canary_side canary;
};

/// The figures of canary `generation` for each instance of `judged`, in that order, summed
/// from every record `parts` holds of it (records of other canaries are left out).
std::vector<canary_instance> canary_figures(const std::vector<shard_snapshot>& shards,
                                            std::uint64_t generation,
                                            const std::vector<std::string>& judged);

struct canary_verdict {
    enum class kind { undecided, promote, roll_back };
    kind what = kind::undecided;
    /// A rollback: the bound broken, with its figures ("errors 12.3% vs 0.1% (bounds 2x
    /// and 1%)"), or that max_duration_ms ran out.
    std::string why;
};

/// How many errors the canary side must have had before its error rate may roll it back.
inline constexpr std::uint64_t canary_min_errors = 5;
/// The z of the Wilson score interval whose low end must exceed the error bound (99.87%
/// one-sided): a canary is not rolled back for an unlucky run of a good version.
inline constexpr double canary_error_z = 3.0;
/// p99s closer than this are within bounds whatever their ratio: below it, the clock's and
/// the scheduler's noise would decide between microsecond handlers.
inline constexpr double canary_p99_floor_ms = 0.1;
/// The z of the p99's confidence interval whose low end must exceed the latency bound.
inline constexpr double canary_p99_z = 3.0;

/// The decision after `elapsed` (docs/operations.md, "Canary reloads"):
/// - rolled back as soon as, for an instance, the canary's error rate exceeds both
///   max_error_ratio times the serving side's and max_error_rate with enough evidence (at
///   least canary_min_errors errors, and the low end of the rate's Wilson interval above
///   both), or its p99 exceeds max_p99_ratio times the serving side's (by more than
///   canary_p99_floor_ms) once both sides have had min_requests timed requests, the low end
///   of its confidence interval too (p99_low_ms);
/// - promoted once min_duration_ms has passed and every instance's canary side has had
///   min_requests requests with its error rate and p99 (where either side was timed)
///   within those bounds;
/// - rolled back when max_duration_ms has passed undecided.
canary_verdict judge_canary(const canary_settings& settings,
                            const std::vector<canary_instance>& figures,
                            std::chrono::milliseconds elapsed);

/// The low end of the Wilson score interval of `errors` in `requests` (0 without requests).
double wilson_lower_bound(std::uint64_t errors, std::uint64_t requests, double z) noexcept;

/// "errors 0.1% vs 0.1%, p99 1.9 ms vs 2.0 ms" (canary first), per instance ("p: ..."
/// before each when there are several).
std::string canary_figures_text(const std::vector<canary_instance>& figures);
/// The canary's requests as the outcome counts them: the most any changed instance had.
std::uint64_t canary_requests(const std::vector<canary_instance>& figures) noexcept;
/// The outcome line: "canary generation 7 promoted after 1,204 requests in 30 s: errors
/// 0.1% vs 0.1%, p99 1.9 ms vs 2.0 ms". `how`: "promoted", "rolled back", "promoted by
/// hand", ...; `why` (a rollback's) replaces the figures when given.
std::string canary_outcome(std::uint64_t generation, const std::string& how,
                           const std::vector<canary_instance>& figures,
                           std::chrono::milliseconds elapsed, const std::string& why = {});
/// Logs a verdict: its outcome `line`, then what serves every new request now: generation
/// `generation` (the canary, promoted), or `serving` again (rolled back). `who` comes before
/// the line ("master: "), `where` after what serves (" in every worker").
void log_canary_verdict(const std::string& line, bool promoted, std::uint64_t generation,
                        std::uint64_t serving, std::string_view who = {},
                        std::string_view where = {});
/// "1,204".
std::string with_thousands(std::uint64_t n);

}  // namespace plugd
