// rate_limit: a filter that lets each client (its IP address) through at most `per_second`
// requests a second on average and `burst` at once, and answers 429 with Retry-After past
// that. Its buckets live in the instance's shared state, so every thread and, with
// "workers", every process of plugd counts against the same ones.
//   config: {"per_second": 5, "burst": 10}   (burst defaults to per_second, rounded up)
//
// How it counts. Time is cut into slots of 1/per_second (aligned on the clock, the same for
// every process); each admitted request takes one slot of its own, the earliest free one
// among the `burst` slots starting at the current one. A slot is taken by incrementing its
// key in the shared map: the request that gets 1 has it, everyone else sees it taken.
// shared_map::increment is atomic, so two requests, on two threads or two processes, can
// never take the same slot, the last token included; no read-then-write can race. That is
// a token bucket of `burst` tokens refilled by one every slot, the refill falling on slot
// boundaries (a client that used its burst just before a boundary gets its next token at
// that boundary, up to one slot early). A client idle for a while finds all its slots free,
// which is a full bucket: idling never earns more than `burst`.
//
// Memory. Each taken slot is an entry that expires a second after its slot has passed, and
// so does the one other entry per client (where the next free slot probably is, so a
// request looks at one or two slots, not `burst`): an active client holds at most
// burst + 1 entries, one that went quiet holds none after burst/per_second + 1 seconds,
// and the core's periodic sweep frees them. When `shared_bytes` runs out all the same
// (more clients at once than it can hold), requests get 503 and the log says so.
//
// The class is in a header so that its test can compile it with a clock of its own: plugd's
// manual clock moves ctx.sleep_for, not std::chrono::steady_clock, which this reads.
#pragma once

#include <plugd/plugin.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace gateway {

/// The client's IP address in a peer "ip:port" or "[ipv6]:port".
inline std::string_view client_address(std::string_view peer) noexcept {
    if (peer.starts_with('[')) {
        const auto end = peer.find(']');
        return end == std::string_view::npos ? peer : peer.substr(1, end - 1);
    }
    const auto colon = peer.rfind(':');
    return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

class rate_limit : public plugd::handler {
  public:
    /// Microseconds on a clock that every process of the machine shares.
    using clock = std::int64_t (*)();

    static std::int64_t steady_now() noexcept {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    explicit rate_limit(plugd::context& ctx) : rate_limit{ctx, &steady_now} {}

    rate_limit(plugd::context& ctx, clock now)
        : ctx_{ctx},
          slots_{ctx.shared()},
          now_{now},
          slot_us_{slot_length(ctx.config())},
          burst_{burst_of(ctx.config())} {}

    plugd::task<void> filter(plugd::request req, plugd::reply& out,
                             plugd::chain_next next) override {
        const outcome o = take_slot(client_address(req.peer()));
        if (o.what == verdict::admitted) {
            co_await next(req, out);
        } else if (o.what == verdict::limited) {
            out.status(429);
            out.header("Retry-After", std::to_string(o.retry_after_s));
            out << (req.is_http() ? "" : "ERR ") << "too many requests; retry in "
                << std::to_string(o.retry_after_s) << " s";
        } else {
            out.status(503);
            out << (req.is_http() ? "" : "ERR ") << "rate_limit: its shared state is full";
        }
    }

  private:
    enum class verdict { admitted, limited, state_full };
    struct outcome {
        verdict what;
        std::int64_t retry_after_s = 0;
    };

    static std::int64_t slot_length(const nlohmann::json& config) {
        const auto found = config.find("per_second");
        if (found == config.end())
            throw std::invalid_argument(
                "per_second: missing; give the requests a client may make per second on "
                "average, e.g. \"per_second\": 5 (0.5: one every 2 s)");
        if (!found->is_number() || !(found->get<double>() >= 0.0001) ||
            found->get<double>() > 1'000'000)
            throw std::invalid_argument(
                "per_second: expected a number from 0.0001 to 1000000, got " + found->dump());
        return std::max<std::int64_t>(1, std::llround(1e6 / found->get<double>()));
    }

    static std::int64_t burst_of(const nlohmann::json& config) {
        const auto found = config.find("burst");
        if (found == config.end()) {
            // per_second was checked first, by slot_length
            return std::max<std::int64_t>(
                1, std::llround(std::ceil(config["per_second"].get<double>())));
        }
        if (!found->is_number_integer() || found->get<std::int64_t>() < 1 ||
            found->get<std::int64_t>() > 10'000)
            throw std::invalid_argument(
                "burst: expected a whole number from 1 to 10000 (the requests a client may make "
                "at once; each takes an entry of the shared state while it counts), got " +
                found->dump());
        return found->get<std::int64_t>();
    }

    static std::optional<std::int64_t> parse(std::string_view text) noexcept {
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
        return n;
    }

    // How long an entry about `slot` must live: until a second after the slot has passed
    // (a request that read the clock just before the slot ended may still look at it).
    std::chrono::milliseconds keep_until_past(std::int64_t slot, std::int64_t now) const {
        const std::int64_t left_us = (slot + 1) * slot_us_ - now;
        return std::chrono::milliseconds{(left_us + 999) / 1000 + 1000};
    }

    outcome take_slot(std::string_view client) {
        const std::int64_t now = now_();
        const std::int64_t current = now / slot_us_;
        const std::int64_t last = current + burst_ - 1;  // the latest slot it may take
        const std::string prefix = std::string{client} + "@";
        const std::string next_key = prefix + "next";
        try {
            // Every slot before the hint was taken when it was written: start there.
            std::int64_t slot = current;
            if (const auto hint = slots_.get(next_key))
                slot = std::max(slot, parse(*hint).value_or(0));
            for (; slot <= last; ++slot) {
                const std::string key = prefix + std::to_string(slot);
                if (slots_.increment(key) != 1) continue;  // taken by another request
                // Taken: give it the time to live increment() cannot (its value stays
                // non-zero, so a concurrent increment still sees it taken).
                slots_.set(key, "1", keep_until_past(slot, now));
                slots_.set(next_key, std::to_string(slot + 1), keep_until_past(slot + 1, now));
                return {verdict::admitted};
            }
            // Every slot up to `last` is taken: the first one that can free is `slot`, which
            // a request may take once `slot` is among its `burst` slots.
            const std::int64_t wait_us = (slot - burst_ + 1) * slot_us_ - now;
            return {verdict::limited, std::max<std::int64_t>(1, (wait_us + 999'999) / 1'000'000)};
        } catch (const std::length_error& e) {
            if (!warned_full_.exchange(true))
                ctx_.log(plugd::log_level::warn, std::string{"refusing requests with 503: "} +
                                                     e.what() +
                                                     "; raise shared_bytes, or lower burst");
            return {verdict::state_full};
        }
    }

    plugd::context& ctx_;
    plugd::shared_map& slots_;
    clock now_;
    std::int64_t slot_us_;  ///< 1/per_second, in microseconds
    std::int64_t burst_;
    std::atomic<bool> warned_full_{false};
};

}  // namespace gateway
