// control_command: what `plugd -s` and the admin endpoint ask a running plugd to do beyond a
// plain reload (SIGHUP): start a canary reload, promote it, roll it back.
//
// `plugd -s` sends it as a queued real-time signal carrying the command as its value
// (sigqueue's SI_QUEUE): unlike SIGHUP, queued signals are never merged, so two commands
// sent while the server is busy both arrive, each with its own value.
#pragma once

#include <signal.h>

#include <optional>
#include <string>

namespace plugd {

struct control_command {
    enum class kind { reload, promote, rollback };
    kind what = kind::reload;
    /// A reload: 0 for a whole reload, 1 to 99 for a canary taking that share of new requests.
    unsigned canary_percent = 0;

    /// The value the signal carries.
    int encode() const noexcept {
        return static_cast<int>(what) * 1000 + static_cast<int>(canary_percent);
    }
    /// Nothing for a value no `plugd -s` sends (a bare `kill -RTMIN+1`, say).
    static std::optional<control_command> decode(int value) noexcept {
        const int what = value / 1000;
        const int percent = value % 1000;
        if (value < 0 || what > 2 || percent > 99 || (what != 0 && percent != 0) ||
            (what == 0 && percent == 0))
            return std::nullopt;
        return control_command{static_cast<kind>(what), static_cast<unsigned>(percent)};
    }
    /// For log lines: "reload --canary 20", "promote", "rollback".
    std::string name() const {
        switch (what) {
            case kind::reload:
                return canary_percent ? "reload --canary " + std::to_string(canary_percent)
                                      : "reload";
            case kind::promote:
                return "promote";
            case kind::rollback:
                return "rollback";
        }
        return "?";
    }
};

/// The signal commands travel by (a plain reload stays SIGHUP, as systemd and kill send it).
inline int command_signal() noexcept {
    return SIGRTMIN + 1;
}

}  // namespace plugd
