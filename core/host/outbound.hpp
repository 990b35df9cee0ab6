// outbound: TCP (and TLS) connections the core opens for a plugin version, and its pool of
// idle ones.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <plugd/stream.hpp>
#include <plugd/tls_options.hpp>

#include "config.hpp"
#include "host/tls_client.hpp"

namespace plugd {

/// One version's outbound connections. Idle connections wait in a pool per serving thread
/// (a socket belongs to its thread's io_context) and per host and port (and TLS options:
/// a TLS connection is reused only with the same CA, name and client certificate); each
/// thread's pool is touched only by that thread, so taking and returning a connection
/// needs no lock and no shared atomic. A stream lives within the handler or task that opened it,
/// whose own claim on the version covers it.
class outbound_pools {
  public:
    /// `threads`: how many serving threads (host::serving_threads()).
    outbound_pools(std::size_t threads, outbound_settings settings, std::string owner);

    /// Opens (or reuses) a connection from the calling serving thread; TLS when
    /// `tls.enabled`.
    boost::asio::awaitable<std::unique_ptr<stream>> connect(std::string host_name,
                                                            std::uint16_t port,
                                                            tls_options tls = {});

    /// The version is retired: no connection is pooled from now on.
    void stop_pooling() noexcept { retired_.store(true, std::memory_order_release); }
    /// Closes serving thread `thread`'s idle connections; on that thread only.
    void close_idle(std::size_t thread) noexcept { pools_[thread].clear(); }
    /// Closes every idle connection from the calling thread: only once the serving threads have
    /// stopped (shutdown), when no other thread can touch them.
    void close_all() noexcept;

    // Used by the streams.
    const outbound_settings& settings() const noexcept { return settings_; }
    const std::string& owner() const noexcept { return owner_; }
    /// An idle connection: its socket, and its TLS state when it is a TLS one.
    struct idle_connection {
        boost::asio::ip::tcp::socket socket;
        tls_link tls;
    };
    /// Takes `connection` back for `key` on serving thread `thread`, unless the version is
    /// retired or the pool is full (then it is closed).
    void give_back(std::size_t thread, const std::string& key, idle_connection connection) noexcept;

  private:
    using idle = std::map<std::string, std::deque<idle_connection>>;
    outbound_settings settings_;
    std::string owner_;
    tls_client_contexts tls_contexts_;
    std::vector<idle> pools_;  ///< by serving thread index; pools_[i] only on thread i
    std::atomic<bool> retired_{false};
};

}  // namespace plugd
