// canary_judge: the decision rule, its evidence, and the outcome's words.
#include "reload/canary_judge.hpp"

#include <cmath>
#include <cstdio>

#include "log.hpp"

namespace plugd {
namespace {

// "12.3%", "0.05%", "0%".
std::string percent_text(double rate) {
    char text[32];
    const double p = rate * 100;
    std::snprintf(text, sizeof text, p > 0 && p < 0.1 ? "%.2f%%" : "%.1f%%", p);
    return text;
}

// "1.9 ms", "0.35 ms", "12 ms", "0.0042 ms", "n/a".
std::string ms_text(std::optional<double> ms) {
    if (!ms) return "n/a";
    char text[32];
    // Rounded as printed: 9.97 reads "10 ms", not "10.0 ms".
    const char* format = *ms >= 9.95  ? "%.0f ms"
                         : *ms >= 1   ? "%.1f ms"
                         : *ms >= 0.1 ? "%.2f ms"
                                      : "%.2g ms";  // microsecond handlers: two digits
    std::snprintf(text, sizeof text, format, *ms);
    return text;
}

// "2.0x", "1.5x", "1.25x".
std::string ratio_text(double r) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", r);
    std::string out = text;
    if (out.ends_with('0')) out.pop_back();  // one decimal at least
    return out + "x";
}

std::string seconds_text(std::chrono::milliseconds elapsed) {
    char text[32];
    const double s = static_cast<double>(elapsed.count()) / 1000;
    std::snprintf(text, sizeof text, s < 10 ? "%.1f s" : "%.0f s", s);
    return text;
}

std::string errors_text(const canary_instance& f) {
    return "errors " + percent_text(f.canary.error_rate()) + " vs " +
           percent_text(f.serving.error_rate());
}

std::string p99_text(const canary_instance& f) {
    return "p99 " + ms_text(f.canary.p99_ms()) + " vs " + ms_text(f.serving.p99_ms());
}

// "p: " before an instance's figures when there are several.
std::string named(const std::vector<canary_instance>& figures, const canary_instance& f) {
    return figures.size() > 1 ? f.name + ": " : std::string{};
}

// Whether the canary's p99 is beyond max_p99_ratio times the serving side's (and the floor):
// none while either side has had fewer than `needed` timed requests.
// `sure`: by the low end of the canary's p99 interval (a rollback needs that much), not its
// p99 as measured (what a promotion looks at).
std::optional<bool> p99_broken(const canary_settings& s, const canary_instance& f,
                               std::uint64_t needed, bool sure) {
    if (f.canary.timed() < needed || f.serving.timed() < needed) return std::nullopt;
    const double canary = sure ? *f.canary.p99_low_ms(canary_p99_z) : *f.canary.p99_ms();
    const double serving = *f.serving.p99_ms();
    return canary > s.max_p99_ratio * serving && canary - serving > canary_p99_floor_ms;
}

// The middle of the bucket the timed request of `rank` (1-based, in time order) is in.
std::optional<double> ms_at_rank(const canary_side& side, std::uint64_t rank) {
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < side.latency.size(); ++i) {
        seen += side.latency[i];
        if (seen >= rank) {
            const double low = static_cast<double>(canary_latency::lower_bound_of(i));
            const double high = static_cast<double>(canary_latency::upper_bound_of(i));
            return (low + high) / 2 / 1000;
        }
    }
    return std::nullopt;
}

}  // namespace

std::uint64_t canary_side::timed() const noexcept {
    std::uint64_t n = 0;
    for (const auto b : latency) n += b;
    return n;
}

double canary_side::error_rate() const noexcept {
    return requests == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(requests);
}

std::optional<double> canary_side::p99_ms() const noexcept {
    const std::uint64_t n = timed();
    if (n == 0) return std::nullopt;
    // The smallest time at or below which at least 99% of them fall.
    return ms_at_rank(*this, (n * 99 + 99) / 100);
}

std::optional<double> canary_side::p99_low_ms(double z) const noexcept {
    const std::uint64_t n = timed();
    if (n == 0) return std::nullopt;
    // The rank of the p99 is binomial: n·0.99 with a deviation of sqrt(n·0.99·0.01).
    const double rank =
        static_cast<double>(n) * 0.99 - z * std::sqrt(static_cast<double>(n) * 0.0099);
    return ms_at_rank(*this, static_cast<std::uint64_t>(std::max(1.0, std::floor(rank))));
}

void canary_side::add(const canary_stats& s) noexcept {
    generation = s.generation;
    requests += s.requests;
    errors += s.errors;
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += s.latency[i];
}

std::vector<canary_instance> canary_figures(const std::vector<shard_snapshot>& shards,
                                            std::uint64_t generation,
                                            const std::vector<std::string>& judged) {
    std::vector<canary_instance> figures;
    for (const auto& name : judged) {
        canary_instance& f = figures.emplace_back();
        f.name = name;
        f.canary.generation = generation;
        for (const auto& s : shards) {
            for (const auto& part : s.canary) {
                if (part.instance != name || part.stats.canary != generation) continue;
                (part.stats.generation == generation ? f.canary : f.serving).add(part.stats);
            }
        }
    }
    return figures;
}

double wilson_lower_bound(std::uint64_t errors, std::uint64_t requests, double z) noexcept {
    if (requests == 0) return 0;
    const double n = static_cast<double>(requests);
    const double p = static_cast<double>(errors) / n;
    const double z2 = z * z;
    const double center = p + z2 / (2 * n);
    const double margin = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    return std::max(0.0, (center - margin) / (1 + z2 / n));
}

canary_verdict judge_canary(const canary_settings& s, const std::vector<canary_instance>& figures,
                            std::chrono::milliseconds elapsed) {
    using kind = canary_verdict::kind;
    bool within = elapsed >= s.min_duration;
    for (const auto& f : figures) {
        // The bound the canary's error rate must not exceed: it breaks it when it exceeds
        // both max_error_ratio times the serving side's rate and max_error_rate.
        const double bound = std::max(s.max_error_ratio * f.serving.error_rate(), s.max_error_rate);
        if (f.canary.errors >= canary_min_errors &&
            wilson_lower_bound(f.canary.errors, f.canary.requests, canary_error_z) > bound) {
            return {kind::roll_back, named(figures, f) + errors_text(f) + " (bounds " +
                                         ratio_text(s.max_error_ratio) + " and " +
                                         percent_text(s.max_error_rate) + ")"};
        }
        if (p99_broken(s, f, s.min_requests, true).value_or(false)) {
            return {kind::roll_back, named(figures, f) + p99_text(f) + " (bound " +
                                         ratio_text(s.max_p99_ratio) + "), " + errors_text(f)};
        }
        const bool timed = f.canary.timed() > 0 || f.serving.timed() > 0;
        within = within && f.canary.requests >= s.min_requests && f.canary.error_rate() <= bound &&
                 (!timed || p99_broken(s, f, s.min_requests, false) == std::optional<bool>{false});
    }
    if (within && !figures.empty()) return {kind::promote, {}};
    if (elapsed >= s.max_duration) {
        return {kind::roll_back, "undecided after " + seconds_text(s.max_duration) +
                                     " (max_duration_ms): " + canary_figures_text(figures)};
    }
    return {};
}

std::string canary_figures_text(const std::vector<canary_instance>& figures) {
    std::string text;
    for (const auto& f : figures) {
        if (!text.empty()) text += "; ";
        text += named(figures, f) + errors_text(f);
        if (f.canary.timed() > 0 || f.serving.timed() > 0) text += ", " + p99_text(f);
    }
    return text;
}

std::uint64_t canary_requests(const std::vector<canary_instance>& figures) noexcept {
    std::uint64_t most = 0;
    for (const auto& f : figures) most = std::max(most, f.canary.requests);
    return most;
}

std::string canary_outcome(std::uint64_t generation, const std::string& how,
                           const std::vector<canary_instance>& figures,
                           std::chrono::milliseconds elapsed, const std::string& why) {
    return "canary generation " + std::to_string(generation) + " " + how + " after " +
           with_thousands(canary_requests(figures)) + " requests in " + seconds_text(elapsed) +
           ": " + (why.empty() ? canary_figures_text(figures) : why);
}

std::string with_thousands(std::uint64_t n) {
    std::string digits = std::to_string(n);
    for (std::size_t at = digits.size(); at > 3; at -= 3) digits.insert(at - 3, 1, ',');
    return digits;
}

void log_canary_verdict(const std::string& line, bool promoted, std::uint64_t generation,
                        std::uint64_t serving, std::string_view who, std::string_view where) {
    const std::string tagged = std::to_string(generation);
    std::string text{who};
    text += line;
    if (promoted) {
        text += "; it serves every new request";
        text += where.empty() ? " now" : where;
        log::info(text, {log::tag("generation", tagged)});
    } else {
        text += "; generation " + std::to_string(serving) + " serves every new request again";
        text += where;
        log::warn(text, {log::tag("generation", tagged)});
    }
}

}  // namespace plugd
