// plugin_version: one loaded version of one plugin instance (library, context, handler).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "config.hpp"
#include "host/outbound.hpp"
#include "host/task_group.hpp"
#include "host/version_lease.hpp"

namespace plugd {

class handler;
class host;
class plugin_context;
class instance_map;

/// A plugin that cannot be used. `what()` names the instance, the file and the cause.
class plugin_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// One version of a plugin instance, from load to unload. Shared (through shared_ptr) by
/// its owner (the deployment, on the control thread; in the test harness, the thread
/// driving it), by every shard that routes to it and by the leases of its work outside
/// requests (version_lease). The owner keeps its reference until it is the only one left
/// (retire(), drained()), so a version is destroyed on the owner's thread, never on a
/// serving or offload thread. Destruction order matters and is fixed: stop(), handler
/// (plugin code), then context, then the library is unloaded (see the member order).
class plugin_version : public std::enable_shared_from_this<plugin_version> {
  public:
    /// Loads `spec` from a private copy placed in `private_dir`: glibc's dlopen hands back
    /// the library it already has for a path, so a new build at the same path would run
    /// the old code. Reads the ABI fingerprint from the file first: no code of a plugin
    /// that does not match runs. Its context reaches the facilities of `host`, which must
    /// outlive it. Throws plugin_error.
    plugin_version(plugin_spec spec, const std::filesystem::path& private_dir,
                   std::uint64_t generation, host& facilities);
    /// A handler compiled into this program (the test harness's plugin_host::of<T>()):
    /// nothing to load or unload; construction as for a loaded one.
    using handler_factory = plugd::handler* (*)(plugd::context&);
    plugin_version(plugin_spec spec, handler_factory make, std::uint64_t generation,
                   host& facilities);
    ~plugin_version();
    plugin_version(const plugin_version&) = delete;
    plugin_version& operator=(const plugin_version&) = delete;

    plugd::handler& handler() const noexcept { return *handler_; }
    const plugin_spec& spec() const noexcept { return spec_; }
    std::uint64_t generation() const noexcept { return generation_; }
    /// A hash of the library file's bytes as loaded: a reload compares it to notice new code.
    std::uint64_t content_hash() const noexcept { return content_hash_; }
    /// The ABI fingerprint the plugin was built with (its `.plugd_abi` section).
    const std::string& abi_fingerprint() const noexcept { return abi_fingerprint_; }
    /// Whether it has handler::serve (built against SDK 1.3 or later); older plugins lack
    /// the slot.
    bool built_with_serve() const;
    /// Whether a `raw` listener may call it: it has serve() and, as far as PLUGD_PLUGIN
    /// recorded, overrides it.
    bool serves_connections() const;
    /// Whether it overrides handle() (as far as PLUGD_PLUGIN recorded: plugins built before
    /// it did, and handlers compiled into the harness, count as overriding it).
    bool answers_requests() const noexcept;
    /// Whether it may stand before another instance in a chain: built against SDK 1.4 or
    /// later (older plugins lack handler::filter) and, as far as PLUGD_PLUGIN recorded,
    /// overriding filter() (handlers compiled into the harness count as overriding it).
    bool filters() const;
    /// Whether an http listener may hand it WebSocket sessions: built against SDK 1.5 or
    /// later (older plugins lack handler::serve_session) and, as far as PLUGD_PLUGIN
    /// recorded, overriding serve_session() (handlers compiled into the harness count as
    /// overriding it).
    bool serves_sessions() const;
    /// When it was loaded, in milliseconds since the Unix epoch.
    std::int64_t loaded_at_unix_ms() const noexcept { return loaded_at_unix_ms_; }

    /// Calls the handler's start(); rethrows its exception as plugin_error.
    void start();
    /// Calls the handler's stop() if start() succeeded. Idempotent.
    void stop() noexcept;

    /// A claim that keeps this version loaded while work of it runs outside a request.
    /// `use` names the facility for the error: there is no lease before construction has
    /// finished (throws std::logic_error saying where to call `use` instead).
    version_lease lease(const char* use);
    /// Its background tasks (context::spawn, context::every).
    task_group& tasks() noexcept { return tasks_; }
    /// Its outbound connections' pools (context::connect).
    outbound_pools& outbound() noexcept { return outbound_; }
    /// Retiring it (a reload replaced it, or it failed to start): asks its background
    /// tasks to end, stops pooling its outbound connections and has every serving thread
    /// close its idle ones (posted to each, holding a lease so the version waits for it).
    /// Its requests, jobs and streams still running go on: the owner keeps its reference
    /// until drained(). Called once, on the owner's thread (plugd's control thread, or
    /// the thread driving the test harness).
    void retire();
    /// The instance's state that survives reloads (context::shared).
    instance_map& shared_state() noexcept { return *state_; }
    host& host_of() noexcept { return host_; }
    /// "plugin <name> generation <n>", for log lines.
    std::string describe() const;

  private:
    // Gets the instance's shared state, makes the context and calls `make`, turning its
    // exceptions into plugin_error.
    void construct(handler_factory make);

    struct library;  // Boost.DLL stays out of this header
    plugin_spec spec_;
    std::uint64_t generation_;
    std::uint64_t content_hash_ = 0;
    std::string abi_fingerprint_;
    std::int64_t loaded_at_unix_ms_ = 0;
    std::filesystem::path private_copy_;  ///< unlinked; still named in /proc/self/maps
    host& host_;
    std::unique_ptr<library> library_;
    std::shared_ptr<instance_map> state_;  ///< the instance's, shared with other versions
    task_group tasks_;                     ///< empty by destruction: tasks hold leases
    outbound_pools outbound_;              ///< streams hold leases; idle sockets are core's
    std::unique_ptr<plugin_context> context_;
    std::unique_ptr<plugd::handler> handler_;
    unsigned entry_points_ = ~0u;  ///< detail::answers_requests | serves_connections | ...
    bool started_ = false;
};

/// Throws plugin_error, naming the listener's JSON path, when a listener of `cfg` cannot
/// be served by `version_of(its plugin)`: a `raw` listener needs serves_connections(), the
/// others answers_requests().
void check_listeners_can_serve(
    const server_config& cfg,
    const std::function<const plugin_version&(const std::string&)>& version_of);

/// Whether the retired `version` may be destroyed now: the caller's reference is the only
/// one left. Nothing can take a new one: shards never route to a retired version again,
/// and only work still running in it takes leases. True also orders what the other
/// holders did to it (on their threads) before the caller destroys it.
bool drained(const std::shared_ptr<plugin_version>& version) noexcept;

/// Hash of a plugin file's bytes, as content_hash() computes it; throws plugin_error when
/// the file cannot be read.
std::uint64_t plugin_file_hash(const plugin_spec& spec);

}  // namespace plugd
