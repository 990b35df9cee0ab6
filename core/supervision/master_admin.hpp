// master_admin: the admin endpoint's questions (admin_backend), answered by a supervising
// master from its worker_board and its own facts: the endpoint the master serves answers
// while every worker is busy, starting or being replaced.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>

#include "admin/admin_endpoint.hpp"
#include "supervision/worker_board.hpp"

namespace plugd {

class master_admin final : public admin_backend {
  public:
    /// Starts `command` on the master's thread (a reload: its combined reload) and calls back
    /// with the answer once it has its outcome, the same one `plugd -s` reports.
    using start_command = std::function<void(control_command, std::function<void(answer)>)>;

    master_admin(boost::asio::io_context& master, const worker_board& board, start_command command)
        : master_{master}, board_{board}, command_{std::move(command)} {}

    boost::asio::awaitable<std::vector<shard_snapshot>> shard_snapshots() override;
    std::uint64_t stalls() const noexcept override;
    std::uint64_t starvations() const noexcept override;
    std::size_t stalled_threads() const noexcept override;
    boost::asio::awaitable<answer> command(control_command command) override;
    std::vector<worker_report> workers(const control_facts& facts) const override;

  private:
    boost::asio::awaitable<answer> command_on_master(control_command command);

    boost::asio::io_context& master_;
    const worker_board& board_;
    start_command command_;
};

}  // namespace plugd
