// master_admin: reads come from the board on the admin thread; a reload runs on the
// master's thread, and the admin thread awaits its outcome without blocking.
#include "supervision/master_admin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>

namespace plugd {

namespace asio = boost::asio;

asio::awaitable<std::vector<shard_snapshot>> master_admin::shard_snapshots() {
    co_return board_.snapshots();
}

std::uint64_t master_admin::stalls() const noexcept {
    try {
        return board_.stalls();
    } catch (...) {
        return 0;
    }
}

std::uint64_t master_admin::starvations() const noexcept {
    try {
        return board_.starvations();
    } catch (...) {
        return 0;
    }
}

std::size_t master_admin::stalled_threads() const noexcept {
    try {
        return board_.stalled_threads();
    } catch (...) {
        return 0;
    }
}

asio::awaitable<admin_backend::answer> master_admin::command(control_command command) {
    co_return co_await asio::co_spawn(master_, command_on_master(command), asio::use_awaitable);
}

asio::awaitable<admin_backend::answer> master_admin::command_on_master(control_command command) {
    // A timer that never expires by itself: cancelled when the outcome arrives.
    asio::steady_timer outcome{master_, asio::steady_timer::time_point::max()};
    std::optional<answer> result;
    command_(command, [&](answer a) {
        result = std::move(a);
        outcome.cancel();
    });
    // A reload refused at once (a bad file) has answered already.
    if (!result) co_await outcome.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!result)
        co_return answer{503, R"({"ok":false,"error":"stopping"})"
                              "\n"};
    co_return std::move(*result);
}

std::vector<worker_report> master_admin::workers(const control_facts& facts) const {
    std::vector<worker_report> all;
    for (const auto& slot : facts.workers) all.push_back({slot, board_.gauges(slot.index)});
    return all;
}

}  // namespace plugd
