// deployment: the reload transaction. See docs/architecture.md, "The life of a reload".
#include "reload/deployment.hpp"

#include <boost/asio/post.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "host/host.hpp"
#include "log.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/private_dir.hpp"
#include "plugins/trial_load.hpp"
#include "reload/reload_plan.hpp"
#include "serving/listener.hpp"
#include "serving/shard.hpp"
#include "tls/tls_context.hpp"
#include "transport/transport.hpp"

namespace plugd {
namespace {

using clock = std::chrono::steady_clock;
namespace asio = boost::asio;

// How long a new version's trial load (constructor and start() in a child process) may
// take. Generous: a constructor may open files or connect; one that takes longer belongs
// in a background task.
constexpr std::chrono::milliseconds trial_load_timeout{30000};

long long elapsed_ms(clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - since).count();
}

// Calls start() on each version. If one throws, those already started are not stopped
// here: the caller retires them, and each one's stop() runs once its tasks have ended.
template <typename Map>
void start_all(const Map& versions) {
    for (const auto& [name, v] : versions) v->start();
}

// What the "listening on" line adds for a listener on a socket from systemd, which accepts
// there whatever `l` says.
std::string from_systemd_note(const std::map<std::string, passed_socket>& passed,
                              const listener_spec& l, const asio::ip::tcp::endpoint& at) {
    const auto it = passed.find(l.name);
    if (it == passed.end() || !it->second.from_systemd) return "";
    std::string note = "; on the socket systemd passed (descriptor " +
                       std::to_string(it->second.fd) + "), not bound by plugd";
    const bool same_address = asio::ip::make_address(l.address) == at.address();
    if (!same_address || (l.port != 0 && l.port != at.port())) {
        // The .socket unit is what systemd listens on, and what it starts plugd for: a
        // different address in server.json (e.g. one for running without systemd) must not
        // keep the service from starting. Said here, so the difference is not a surprise.
        note += "; its configured address " + l.address + ":" + std::to_string(l.port) +
                " is ignored: the .socket unit's ListenStream= decides";
    }
    return note;
}

}  // namespace

deployment::deployment(asio::io_context& control, std::vector<std::unique_ptr<shard>>& shards,
                       host& facilities, const private_dir& dir, std::uint64_t first_generation,
                       std::map<std::string, passed_socket> passed, bool one_of_workers)
    : control_{control},
      shards_{shards},
      host_{facilities},
      dir_{dir},
      first_generation_{first_generation},
      passed_{std::move(passed)},
      one_of_workers_{one_of_workers} {}

void deployment::wait_for_shard_updates() const {
    // A reload already blocks the control thread (reading files, the trial load); this
    // wait is for shards to run one posted handler each: a millisecond or so.
    const auto deadline = clock::now() + std::chrono::seconds{2};
    while (shard_updates_->load(std::memory_order_acquire) > 0 && clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
}

deployment::~deployment() {
    clear();
}

struct deployment::prepared {
    std::uint64_t generation = 0;
    plugin_map loaded;  ///< the versions loaded and started, by instance
    /// Each listener the plan adds, bound on every shard (by shard index).
    std::vector<std::vector<std::shared_ptr<shard_listener>>> bound;
    std::map<std::string, std::shared_ptr<const tls_context>> tls;
};

deployment::prepared deployment::prepare(const server_config& running, const server_config& next,
                                         const reload_plan& plan) {
    const std::uint64_t numbered = std::exchange(next_number_, 0);
    prepared p;
    p.generation = running.listeners.empty() ? first_generation_
                   : numbered != 0           ? numbered
                                             : std::max(generation_, highest_) + 1;
    try {
        // Every TLS listener's files are read again: replacing them and reloading is how a
        // certificate rotates. One that cannot be used refuses the reload here.
        for (const auto& l : next.listeners) {
            if (auto context = make_tls_context(next, l)) p.tls[l.name] = std::move(context);
        }
        // A state file that could not be saved at stop is refused now, not found out then
        // (a worker's master writes it, and checks it).
        for (const auto& spec : next.plugins) {
            if (one_of_workers_) break;
            const auto before = std::find_if(running.plugins.begin(), running.plugins.end(),
                                             [&](const auto& p) { return p.name == spec.name; });
            const bool changed =
                before == running.plugins.end() || before->state_file != spec.state_file;
            if (!spec.state_file.empty() && changed) check_state_file(spec.state_file, spec.name);
        }
        for (const auto& spec : plan.load) {
            // A crash in the constructor or start() ends the child, not the server. The
            // same bytes with the same config passed before: no need to try them again
            // (a deploy that goes back and forth between two builds pays once each).
            auto tried = std::make_pair(plugin_file_hash(spec), spec.config.dump());
            if (!trial_passed_.count(tried)) {
                trial_load(spec, trial_load_timeout);
                trial_passed_.insert(std::move(tried));
            }
            p.loaded[spec.name] =
                std::make_shared<plugin_version>(spec, dir_.path(), p.generation, host_);
        }
        check_listeners_can_serve(next, [&](const std::string& name) -> const plugin_version& {
            const auto it = p.loaded.find(name);
            return it != p.loaded.end() ? *it->second : *plugins_.at(name);
        });
        if (!plan.add.empty()) wait_for_shard_updates();
        // Unchanged listeners keep their sockets; a moved one binds while the old still
        // listens, so there is never a moment without a listening socket.
        for (const auto& l : plan.add) {
            const auto it = passed_.find(l.name);
            // A worker's other workers bind a listener a reload adds at the same moment:
            // it is shared on purpose, like reuse_port.
            listener_spec spec = l;
            if (one_of_workers_) spec.reuse_port = true;
            p.bound.push_back(bind_listener(next, spec, held_, shards_,
                                            it != passed_.end() ? it->second : passed_socket{}));
        }
        start_all(p.loaded);
    } catch (...) {
        // A version that started may have started tasks: it drains like any replaced one,
        // so it is destroyed here, on the control thread, once they have ended.
        for (auto& [name, version] : p.loaded) {
            retire(std::move(version), next.limits.reload_drain_timeout);
        }
        unload_drained();
        std::set<std::string> names;
        for (const auto& spec : running.plugins) names.insert(spec.name);
        host_.state().keep_only(names);  // no state for instances that never served
        throw;
    }
    return p;
}

template <class Make>
void deployment::post_updates(Make&& make) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        shard_update u = make(i);
        shard_updates_->fetch_add(1, std::memory_order_relaxed);
        asio::post(shards_[i]->io(),
                   [s = shards_[i].get(), u = std::move(u), pending = shard_updates_]() mutable {
                       s->apply(std::move(u));
                       pending->fetch_sub(1, std::memory_order_release);
                   });
    }
}

std::string deployment::apply(const server_config& running, const server_config& next) {
    if (canary_) throw std::logic_error("a reload while a canary runs: promote or roll it back");
    const auto plan = plan_reload(running, next, [this](const std::string& name) {
        return plugins_.at(name)->content_hash();
    });
    prepared p = prepare(running, next, plan);

    // Commit: from here on nothing can fail.
    const std::uint64_t generation = p.generation;
    generation_ = generation;
    highest_ = std::max(highest_, generation);
    plugin_map current;
    std::set<std::string> names;
    for (const auto& spec : next.plugins) {
        auto it = p.loaded.find(spec.name);
        current[spec.name] = it != p.loaded.end() ? it->second : plugins_.at(spec.name);
        names.insert(spec.name);
    }
    for (auto& [name, version] : plugins_) {
        auto it = current.find(name);
        if (it == current.end() || it->second != version) {
            retire(std::move(version), next.limits.reload_drain_timeout);
        }
    }
    plugins_ = current;
    host_.state().keep_only(names);  // a removed instance's state goes with it
    for (const auto& spec : next.plugins) {
        host_.state().configure(spec.name, spec.shared_bytes, spec.state_file);
    }
    // Logged before the shards own the acceptors: afterwards only their threads touch them.
    for (const auto& [name, v] : p.loaded) {
        const std::string g = std::to_string(generation);
        log::info(
            "plugin " + name + ": loaded " + v->spec().file.string() + " (generation " + g + ")",
            {log::tag("plugin", name), log::tag("generation", g)});
    }
    // An inherited socket of a listener this reload removed or moved: this worker's copy
    // must go too, or the socket would keep queueing connections nobody accepts. One from
    // systemd stays: systemd keeps its own copy open (closing ours would not stop the
    // queueing), and a reload that adds the listener back accepts on it again.
    for (const auto& name : plan.remove) {
        if (auto it = passed_.find(name); it != passed_.end() && !it->second.from_systemd) {
            ::close(it->second.fd);
            passed_.erase(it);
        }
    }
    std::erase_if(held_, [&](const listener_spec& h) {
        return std::find(plan.remove.begin(), plan.remove.end(), h.name) != plan.remove.end();
    });
    for (std::size_t i = 0; i < plan.add.size(); ++i) {
        const auto& l = plan.add[i];
        const auto at = p.bound[i].front()->acceptor.local_endpoint();
        const std::string systemd_note = from_systemd_note(passed_, l, at);
        log::info("listener " + l.name + ": listening on " + format_endpoint(at) + " (framing " +
                      std::string{to_string(l.framing)} + ", " + dispatch_summary(l) + ")" +
                      systemd_note,
                  {log::tag("listener", l.name), log::tag("plugin", l.plugin)});
        held_.push_back(l);
        if (!systemd_note.empty()) held_.back().address = at.address().to_string();
        held_.back().port = at.port();
    }
    certificates_.clear();
    for (const auto& [name, context] : p.tls) certificates_[name] = context->facts();
    count_traffic_ = next.admin.has_value() || count_for_master_;
    post_updates([&](std::size_t i) {
        shard_update u;
        u.plugins = current;
        for (auto& routes : p.bound) u.added.push_back(routes[i]);
        u.kept = plan.keep_listeners;
        u.removed = plan.remove;
        u.count_traffic = count_traffic_;
        u.tls = p.tls;
        return u;
    });
    std::vector<std::string> load_names, kept_listener_names, added_names;
    for (const auto& s : plan.load) load_names.push_back(s.name);
    for (const auto& l : plan.keep_listeners) kept_listener_names.push_back(l.name);
    for (const auto& l : plan.add) added_names.push_back(l.name);
    return "plugins loaded: " + join_names(load_names) + "; kept: " + join_names(plan.keep) +
           "; unloaded: " + join_names(plan.unload) +
           "; listeners added: " + join_names(added_names) +
           "; removed: " + join_names(plan.remove) + "; kept: " + join_names(kept_listener_names);
}

std::string deployment::start_canary(const server_config& running, const server_config& next,
                                     unsigned percent) {
    if (canary_) throw std::logic_error("a canary while a canary runs: promote or roll it back");
    const auto plan = plan_reload(running, next, [this](const std::string& name) {
        return plugins_.at(name)->content_hash();
    });
    check_canary_plan(running, next, plan);  // before anything is loaded
    prepared p = prepare(running, next, plan);

    // Commit: the serving generation stays as it is; the canary joins it.
    highest_ = std::max(highest_, p.generation);
    canary_run& c = canary_.emplace();
    c.generation = p.generation;
    c.percent = percent;
    for (const auto& spec : next.plugins) {
        const auto it = p.loaded.find(spec.name);
        c.plugins[spec.name] = it != p.loaded.end() ? it->second : plugins_.at(spec.name);
    }
    for (const auto& [name, v] : p.loaded) {
        c.judged.push_back(name);
        const std::string g = std::to_string(c.generation);
        log::info("plugin " + name + ": loaded " + v->spec().file.string() + " (generation " + g +
                      ", a canary next to generation " + std::to_string(generation_) + ")",
                  {log::tag("plugin", name), log::tag("generation", g)});
    }
    post_updates([&](std::size_t) {
        shard_update u = listeners_kept();
        canary_update& cu = u.canary.emplace();
        cu.generation = c.generation;
        cu.serving_generation = generation_;
        cu.plugins = c.plugins;
        cu.judged = c.judged;
        cu.split.percent = percent;
        cu.split.sticky = next.canary.sticky;
        cu.split.header = next.canary.sticky_header;
        cu.split.salt = c.generation;
        return u;
    });
    return "plugins loaded: " + join_names(c.judged) + "; kept: " + join_names(plan.keep);
}

void deployment::promote_canary(const server_config& next) {
    if (!canary_) return;
    generation_ = canary_->generation;
    for (auto& [name, version] : plugins_) {
        if (canary_->plugins.at(name) != version)
            retire(std::move(version), next.limits.reload_drain_timeout);
    }
    plugins_ = std::move(canary_->plugins);
    canary_.reset();
    for (const auto& spec : next.plugins) {
        host_.state().configure(spec.name, spec.shared_bytes, spec.state_file);
    }
    post_updates([&](std::size_t) { return listeners_kept(); });
}

shard_update deployment::listeners_kept() const {
    shard_update u;
    u.plugins = plugins_;
    u.kept = held_;
    u.count_traffic = count_traffic_;
    return u;
}

void deployment::roll_back_canary(const server_config& running) {
    if (!canary_) return;
    for (const auto& name : canary_->judged) {
        retire(std::move(canary_->plugins.at(name)), running.limits.reload_drain_timeout);
    }
    canary_.reset();
    post_updates([&](std::size_t) { return listeners_kept(); });
}

std::vector<std::shared_ptr<plugin_version>> deployment::draining() const {
    std::vector<std::shared_ptr<plugin_version>> versions;
    for (const auto& d : draining_) versions.push_back(d.version);
    return versions;
}

void deployment::retire(std::shared_ptr<plugin_version> version,
                        std::chrono::milliseconds timeout) {
    version->retire();
    auto& d = draining_.emplace_back(draining_version{
        std::move(version), clock::now(), std::make_unique<asio::steady_timer>(control_)});
    d.deadline->expires_after(timeout);
    d.deadline->async_wait(
        [this, weak = std::weak_ptr{d.version}](const boost::system::error_code& ec) {
            auto version = weak.lock();
            if (ec || !version) return;
            log::warn(version->describe() +
                          ": requests still running after reload_drain_timeout_ms; cancelling them",
                      {log::tag("plugin", version->spec().name),
                       log::tag("generation", std::to_string(version->generation()))});
            if (const auto tasks = version->tasks().running(); !tasks.empty()) {
                log::warn(version->describe() + ": background task(s) " + join_names(tasks) +
                          " ignore cancellation; the version stays loaded until they end (a task "
                          "must let the operation_aborted of sleep_for propagate)");
            }
            for (auto& s : shards_) {
                // The reference travels with the request so the address cannot be reused by
                // another version before the shard compares it; dropping it re-checks.
                asio::post(s->io(), [this, s = s.get(), version]() mutable {
                    s->abort_requests_on(version.get());
                    version.reset();
                    asio::post(control_, [this] { unload_drained(); });
                });
            }
        });
}

void deployment::unload_drained() {
    for (auto it = draining_.begin(); it != draining_.end();) {
        if (!drained(it->version)) {
            ++it;
            continue;
        }
        const std::string what = it->version->describe();
        const std::string name = it->version->spec().name;
        const std::string generation = std::to_string(it->version->generation());
        const auto drained = elapsed_ms(it->since);
        it->deadline->cancel();
        it = draining_.erase(it);  // stops and unloads the version
        log::info(what + ": unloaded after draining for " + std::to_string(drained) + " ms",
                  {log::tag("plugin", name), log::tag("generation", generation)});
    }
}

void deployment::cancel_tasks() {
    for (auto& [name, v] : plugins_) v->tasks().cancel_all();
    if (canary_)
        for (const auto& name : canary_->judged) canary_->plugins.at(name)->tasks().cancel_all();
    for (auto& d : draining_) d.version->tasks().cancel_all();
}

void deployment::close_outbound() {
    for (auto& [name, v] : plugins_) v->outbound().close_all();
    if (canary_)
        for (const auto& name : canary_->judged) canary_->plugins.at(name)->outbound().close_all();
    for (auto& d : draining_) d.version->outbound().close_all();
}

void deployment::cancel_timers() {
    for (auto& d : draining_) d.deadline->cancel();
}

void deployment::clear() {
    canary_.reset();
    draining_.clear();
    plugins_.clear();
}

}  // namespace plugd
