// deployment: what is serving (plugin versions, bound listeners) and the reload transaction
// that changes it: prepare, commit, retire, unload.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "serving/passed_socket.hpp"
#include "tls/certificate_facts.hpp"

namespace plugd {

class host;
class plugin_version;
class private_dir;
class shard;
struct shard_update;
struct reload_plan;

/// Owned by the server and touched only on the control thread. Start-up is a reload from
/// an empty configuration, so both go through apply().
class deployment {
  public:
    /// `first_generation`: the number start-up gets (a respawned worker continues its
    /// master's count). `passed`: listening sockets by listener name, passed by systemd or
    /// handed down by a supervising master, which listeners of those names accept on
    /// instead of binding. `one_of_workers`: this process is a supervised worker, whose
    /// fellow workers bind a listener a reload adds at the same moment.
    deployment(boost::asio::io_context& control, std::vector<std::unique_ptr<shard>>& shards,
               host& facilities, const private_dir& dir, std::uint64_t first_generation = 1,
               std::map<std::string, passed_socket> passed = {}, bool one_of_workers = false);
    ~deployment();

    /// Prepares everything `next` needs beyond `running` (loads changed plugins, binds new
    /// listeners, calls start()), then commits: each shard gets its update, replaced
    /// versions are retired. Throws config_error or plugin_error with nothing changed (what
    /// was prepared is retired and unloaded). Returns what changed, for the log.
    std::string apply(const server_config& running, const server_config& next);

    /// A canary reload: prepares `next` as apply() does (checks, trial load, load, start()),
    /// then commits it next to the generation serving: on every shard, `percent` of new
    /// requests (split as `next.canary` says) go to its versions, the rest to the serving
    /// ones, and each side counts, for every instance it changed, what the judge compares.
    /// Nothing else changes until promote_canary() or roll_back_canary(). Throws as apply()
    /// does, and config_error, before anything is loaded, when `next` changes more than the
    /// plugin instances of `running`, or none of them (check_canary_plan). Returns what it
    /// loaded, for the log.
    std::string start_canary(const server_config& running, const server_config& next,
                             unsigned percent);
    /// The canary's versions serve every new request from now on; those it replaces drain
    /// as in a reload. `next`: the configuration the canary loaded (its shared-state
    /// settings take effect now).
    void promote_canary(const server_config& next);
    /// Every new request goes to the serving generation again; the canary's own versions
    /// drain and unload as replaced ones do. Its generation number is never used again.
    void roll_back_canary(const server_config& running);

    /// A canary running next to the generation serving.
    struct canary_run {
        std::uint64_t generation = 0;
        unsigned percent = 0;
        /// Its complete set, by instance (the instances it did not change share the
        /// serving generation's versions).
        std::map<std::string, std::shared_ptr<plugin_version>> plugins;
        std::vector<std::string> judged;  ///< the instances whose version it changed
    };
    const std::optional<canary_run>& canary() const noexcept { return canary_; }

    /// Unloads retired versions that nothing uses any more: no shard routes to them and no
    /// lease remains (see version_lease). Called whenever a shard or a lease lets go.
    void unload_drained();

    /// Shutdown: asks every version's background tasks to stop.
    void cancel_tasks();
    /// Shutdown, once the shards' threads have stopped: closes the idle outbound connections.
    void close_outbound();
    /// Shutdown: the drain deadlines no longer matter.
    void cancel_timers();
    /// Destroys every version (after the shards and the offload threads have stopped).
    void clear();

    /// A supervised worker whose master serves the admin endpoint: its shards count traffic
    /// although its configuration (the master's copy) has no `admin`.
    void count_for_master() noexcept { count_for_master_ = true; }

    std::uint64_t generation() const noexcept { return generation_; }
    /// The number the next apply() commits as, instead of one more than now: a supervised
    /// worker's master numbers generations (it skips numbers a reload no worker finished
    /// used, and never gives one twice), so every worker and the master agree.
    void number_next(std::uint64_t generation) noexcept { next_number_ = generation; }
    /// The versions serving now, by instance name.
    const std::map<std::string, std::shared_ptr<plugin_version>>& plugins() const noexcept {
        return plugins_;
    }
    /// Replaced versions not yet unloaded: requests or leases still hold them.
    std::vector<std::shared_ptr<plugin_version>> draining() const;
    std::size_t draining_count() const noexcept { return draining_.size(); }
    /// The listeners bound now, with their real ports.
    const std::vector<listener_spec>& listeners() const noexcept { return held_; }
    /// The certificate of each TLS listener serving now, by listener name.
    const std::map<std::string, certificate_facts>& certificates() const noexcept {
        return certificates_;
    }

  private:
    using plugin_map = std::map<std::string, std::shared_ptr<plugin_version>>;
    /// What a reload prepared, before anything that serves has changed.
    struct prepared;

    /// The preparation apply() and start_canary() share; on failure, undoes what it did and
    /// rethrows.
    prepared prepare(const server_config& running, const server_config& next,
                     const reload_plan& plan);
    /// An update that keeps every listener as it is and serves plugins_ (a canary's start,
    /// promotion and rollback change plugin versions only).
    shard_update listeners_kept() const;
    /// Posts each shard its update, made by `make(shard index)`.
    template <class Make>
    void post_updates(Make&& make);
    struct draining_version {
        std::shared_ptr<plugin_version> version;
        std::chrono::steady_clock::time_point since;
        std::unique_ptr<boost::asio::steady_timer> deadline;
    };

    /// An old version drains: its tasks are cancelled at once, shards drop it as their last
    /// request on it ends. Past `timeout` its remaining requests are cancelled and what
    /// still holds it is logged, so old versions never pile up.
    void retire(std::shared_ptr<plugin_version> version, std::chrono::milliseconds timeout);
    /// Waits (at most 2 s) until every shard has applied the updates posted to it: a
    /// listener the previous reload removed is closed by each shard as it applies that
    /// update, and a reload that adds it back must not bind its port before.
    void wait_for_shard_updates() const;

    boost::asio::io_context& control_;
    std::vector<std::unique_ptr<shard>>& shards_;
    host& host_;
    const private_dir& dir_;
    std::uint64_t first_generation_;
    std::map<std::string, passed_socket> passed_;
    bool one_of_workers_;
    bool count_for_master_ = false;
    std::uint64_t generation_ = 0;
    std::uint64_t next_number_ = 0;  ///< 0: one more than highest_
    std::uint64_t highest_ = 0;      ///< the highest number given (a rolled-back canary's too)
    bool count_traffic_ = false;     ///< what the last update told the shards
    std::optional<canary_run> canary_;
    plugin_map plugins_;
    /// The listeners bound now, with their real ports (a config's port 0 is ephemeral).
    std::vector<listener_spec> held_;
    std::map<std::string, certificate_facts> certificates_;
    std::list<draining_version> draining_;
    /// (file hash, config) of versions whose trial load passed.
    std::set<std::pair<std::uint64_t, std::string>> trial_passed_;
    /// Updates posted to shards and not applied yet (decremented on the shards' threads).
    std::shared_ptr<std::atomic<std::size_t>> shard_updates_ =
        std::make_shared<std::atomic<std::size_t>>(0);
};

}  // namespace plugd
