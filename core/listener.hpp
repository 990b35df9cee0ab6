// listener: binds one configured listener on every shard (SO_REUSEPORT, shard per core).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "shard.hpp"

namespace plugd {

/// Binds `spec` once per shard, so the kernel spreads new connections across the shards
/// and each accepts on its own thread. Returns one route per shard, in shard order, not yet
/// accepting. Throws config_error naming the listener, its JSON path and what to do.
std::vector<std::shared_ptr<route>> bind_listener(const server_config& cfg,
                                                  const listener_spec& spec,
                                                  std::vector<std::unique_ptr<shard>>& shards);

/// "ip:port", IPv6 in brackets: how logs and requests show addresses.
std::string format_endpoint(const tcp::endpoint& endpoint);

}  // namespace plugd
