// buffered_connection: a plugd::connection the core implements, reading over one buffer.
#pragma once

#include <string>

#include <plugd/connection.hpp>

#include "host/buffered_stream.hpp"

namespace plugd {

/// The reading half of a plugd::connection (see buffered_stream), and its closed state.
/// Used by the `raw` listeners' raw_stream and by the test harness's in-process
/// connections.
class buffered_connection : public buffered_stream<plugd::connection> {
  protected:
    /// close() was called: every later read or write throws (check_open()).
    void mark_closed() noexcept { closed_ = true; }
    /// Throws std::runtime_error, naming the peer, once mark_closed() was called.
    void check_open() const;
    /// "connection from <peer>".
    std::string describe() const override;

  private:
    bool closed_ = false;
};

}  // namespace plugd
