// serving_fixture: one listener served by a real shard inside the test process, each client
// on a Unix socket pair. The whole serving path (shard, connection, codec, sweeper) runs as
// in plugd, with no process to start, no port and no log text to wait on; the test waits
// on socket reads and on the shard's own state, read on the shard's thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "line_client.hpp"

namespace plugd::test {

/// A plugin of the build: a bundled one (greeting) or a test one (echo, facilities...).
std::filesystem::path bundled_plugin(const std::string& name);
std::filesystem::path test_plugin(const std::string& name);

/// The listener a fixture serves and the plugin it routes to.
struct served_listener {
    framing_kind framing = framing_kind::line;
    /// The sweeper ticks at an eighth of the shortest timeout (5 ms at least): small
    /// timeouts make timeouts and parking quick to reach.
    struct limits limits;
    std::filesystem::path plugin = bundled_plugin("greeting");
    nlohmann::json plugin_config = nlohmann::json::object();
};

/// What a client's socket pair is.
enum class pair_kind {
    stream,  ///< SOCK_STREAM: a byte stream, as TCP; a read may bring several writes
    /// SOCK_SEQPACKET: each write is one read at the other end, so a test sees how the
    /// server batched its writes. Only where each server read takes more than the client
    /// writes at once (a longer record is cut).
    records,
};

/// A shard on a thread of its own serving `listener` (named "test", plugin instance
/// "plugin"). Its destructor stops the shard as plugd's stop does: idle connections close,
/// a request running finishes first (waited for 5 s at most, then abandoned, and the
/// running test case fails). One fixture at a time: it keeps the process-wide log
/// (log_lines()) while it lives. Touches the shard's state on the shard's thread only.
class serving_fixture {
  public:
    explicit serving_fixture(served_listener listener = {});
    ~serving_fixture();
    serving_fixture(const serving_fixture&) = delete;
    serving_fixture& operator=(const serving_fixture&) = delete;

    /// A new client, served as one the listener accepted (its peer shows as "unknown").
    line_client connect(pair_kind kind = pair_kind::stream);

    /// The listener's connections open now, and those of them parked (waiting for a new
    /// request with no coroutine), as the shard's thread sees them.
    std::size_t open_connections();
    std::size_t parked_connections();
    /// Polls open_connections() or parked_connections() until it is `n`, paced by round
    /// trips to the shard's thread; false if it is not within `limit`.
    bool wait_open_connections(std::size_t n, milliseconds limit = 5s);
    bool wait_parked_connections(std::size_t n, milliseconds limit = 5s);
    /// Waits until the server has read everything `client` sent (nothing left in the socket
    /// pair's queue), paced as above: what was written before reaches the server in reads
    /// of its own. Throws if not within `limit`.
    void wait_read_by_server(const line_client& client, milliseconds limit = 5s);

    /// What the server logged since the fixture began.
    std::vector<std::string> log_lines() const;

  private:
    struct parts;
    std::unique_ptr<parts> parts_;
};

}  // namespace plugd::test
