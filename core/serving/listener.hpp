// listener: binds one configured listener on every shard (SO_REUSEPORT, shard per core).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "serving/passed_socket.hpp"
#include "serving/shard.hpp"

namespace plugd {

/// Binds `spec` once per shard, so the kernel spreads new connections across the shards
/// and each accepts on its own thread. Returns one shard_listener per shard, in shard order, not
/// yet accepting. Every socket allows rebinding over connections left in TIME_WAIT. Throws
/// config_error naming the listener, its JSON path and what to do; the advice for a port in
/// use depends on whether one of `held` (this plugd's listeners now, with the ports they
/// are bound to) has it. With a `passed` listening socket (systemd's, or a supervising
/// master's for a listener of the same address and port), each shard accepts on a
/// duplicate of it instead: one accept queue for every shard and every worker process.
std::vector<std::shared_ptr<shard_listener>> bind_listener(
    const server_config& cfg, const listener_spec& spec, const std::vector<listener_spec>& held,
    std::vector<std::unique_ptr<shard>>& shards, passed_socket passed = {});

}  // namespace plugd
