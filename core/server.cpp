// server: start-up, reload, signals and graceful shutdown of the running plugd.
//
// The control thread (main) owns the configuration and every plugin version; shards only
// receive finished shard_updates. A reload is prepared completely on the control thread
// (config, plugins, sockets, start()) before a single shard sees it; see
// docs/architecture.md, "The life of a reload".
#include "server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <map>
#include <optional>
#include <thread>

#include "control_signals.hpp"
#include "file_watch.hpp"
#include "listener.hpp"
#include "log.hpp"
#include "pid_file.hpp"
#include "plugin_version.hpp"
#include "private_dir.hpp"
#include "reload_plan.hpp"
#include "reload_status.hpp"
#include "shard.hpp"

namespace plugd {
namespace {

using clock = std::chrono::steady_clock;
using plugin_map = std::map<std::string, std::shared_ptr<plugin_version>>;

long long elapsed_ms(clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - since).count();
}

// Each connection is a descriptor: the soft limit (often 1024) would cap a server long
// before max_connections does. Raise it to the hard limit, which only root could raise.
void raise_descriptor_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t before = limit.rlim_cur;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
    }
    log::info("open file limit: " + std::to_string(limit.rlim_cur) +
              (limit.rlim_cur != before ? " (raised from " + std::to_string(before) + ")" : ""));
}

// "user": once every privileged step is done (binding low ports, reading root-only files),
// continue as that user. The private folder changes hands too: reloads write copies there.
void drop_privileges(const server_config& cfg, const private_dir& dir) {
    if (cfg.user.empty()) return;
    const std::string where = cfg.source.string() + ": /user: ";
    if (::geteuid() != 0) {
        throw config_error(where + "plugd is not running as root, so it cannot switch to user \"" +
                           cfg.user + "\"; remove /user, or start plugd as root");
    }
    const passwd* pw = ::getpwnam(cfg.user.c_str());
    if (!pw) throw config_error(where + "no user named \"" + cfg.user + "\" on this machine");
    if (::chown(dir.path().c_str(), pw->pw_uid, pw->pw_gid) != 0 ||
        ::initgroups(pw->pw_name, pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 ||
        ::setuid(pw->pw_uid) != 0) {
        throw config_error(where + "cannot switch to user \"" + cfg.user +
                           "\": " + std::strerror(errno));
    }
    log::info("now running as user " + cfg.user + " (uid " + std::to_string(pw->pw_uid) +
              "): reloads read files and bind ports as this user");
    if (::access(cfg.pid_file.parent_path().c_str(), W_OK) != 0) {
        log::warn("user " + cfg.user + " cannot write in " + cfg.pid_file.parent_path().string() +
                  ": plugd -s reload will not see reload outcomes; put /pid_file in a folder "
                  "this user can write");
    }
}

// Calls start() on each version; if one throws, stops those already started and rethrows.
void start_all(const plugin_map& versions) {
    std::vector<plugin_version*> started;
    try {
        for (const auto& [name, v] : versions) {
            v->start();
            started.push_back(v.get());
        }
    } catch (...) {
        for (auto* v : started) v->stop();
        throw;
    }
}

class server {
  public:
    server(server_config cfg, const server_options& options)
        : cfg_{std::move(cfg)}, options_{options} {}

    int run() {
        // First of all: a second plugd given the same pid file stops here, before it loads
        // or binds anything.
        pid_file_.emplace(cfg_.pid_file);
        raise_descriptor_limit();
        threads_ =
            cfg_.threads != 0 ? cfg_.threads : std::max(1u, std::thread::hardware_concurrency());
        for (unsigned i = 0; i < threads_; ++i) {
            shards_.push_back(std::make_unique<shard>(
                i, threads_, [this] { asio::post(control_, [this] { unload_drained(); }); }));
        }
        // Start-up is a reload from nothing: the same preparation, the same all-or-nothing.
        prepare_and_commit(server_config{}, cfg_);
        record(true, "started generation 1", unix_ms());
        drop_privileges(cfg_, dir_);
        for (auto& s : shards_) {
            s->start([this] { asio::post(control_, [this] { shard_finished(); }); });
        }
        wait_for_signal();
        if (options_.watch) {
            watch_.emplace(control_, std::chrono::milliseconds{300}, [this] {
                log::info("--watch: a watched file changed: reloading");
                schedule_reload();
            });
            watch_->watch(watched_files());
        }
        log::info("plugd " PLUGD_VERSION " serving generation 1 with " + std::to_string(threads_) +
                  " threads (pid " + std::to_string(::getpid()) + ")");

        control_.run();
        for (auto& s : shards_) s->join();
        shards_.clear();  // io_contexts and their coroutine frames go before the plugins
        draining_.clear();
        plugins_.clear();
        remove_pid_file();
        log::info("plugd stopped");
        return 0;
    }

  private:
    struct draining_version {
        std::shared_ptr<plugin_version> version;
        clock::time_point since;
        std::unique_ptr<asio::steady_timer> deadline;
    };

    void wait_for_signal() {
        signals_.async_wait([this](int signo) {
            if (signo == SIGHUP) {
                schedule_reload();
            } else {
                begin_shutdown(signo);
            }
            wait_for_signal();
        });
    }

    // Reloads run one at a time on this thread. A request arriving while one is queued
    // joins it; one arriving while a reload runs queues exactly one more.
    void schedule_reload() {
        if (reload_queued_) return;
        reload_queued_ = true;
        asio::post(control_, [this] {
            reload_queued_ = false;
            reload();
        });
    }

    void reload() {
        ++attempt_;
        const auto started = clock::now();
        const std::int64_t began = unix_ms();
        if (shutting_down_) {
            log::warn("reload requested during shutdown: ignored");
            record(false, "shutting down", began);
            return;
        }
        try {
            server_config next =
                options_.config_file.empty()
                    ? default_config(options_.bundled_plugin_dir)
                    : load_config(options_.config_file, options_.bundled_plugin_dir);
            // What the process was set up with at start cannot follow a reload.
            auto unchanged = [&](const char* key, const std::string& before,
                                 const std::string& after) {
                if (before == after) return;
                throw config_error(next.source.string() + ": /" + key +
                                   ": cannot change while running (\"" + before + "\" -> \"" +
                                   after +
                                   "\"); restart plugd to change it, or put the old value back");
            };
            unchanged("user", cfg_.user, next.user);
            unchanged("threads", std::to_string(cfg_.threads), std::to_string(next.threads));
            // The pid file is how `plugd -s` finds this server: moving it would leave a
            // command reading the old config's pid_file with nobody to find.
            unchanged("pid_file", cfg_.pid_file.string(), next.pid_file.string());
            const std::string summary = prepare_and_commit(cfg_, next);
            cfg_ = std::move(next);
            if (watch_) watch_->watch(watched_files());
            const std::string line = "reload: generation " + std::to_string(generation_) + " in " +
                                     std::to_string(elapsed_ms(started)) + " ms; " + summary;
            log::info(line);
            record(true, line, began);
        } catch (const std::exception& e) {
            log::error(std::string{"reload failed: "} + e.what() + "; still serving generation " +
                       std::to_string(generation_) + ", unchanged");
            record(false, e.what(), began);
        }
    }

    // Loads, binds and starts everything `next` needs beyond `running`, then hands each
    // shard its update. Throws, with nothing changed, if any step fails. Returns what
    // changed, for the log.
    std::string prepare_and_commit(const server_config& running, const server_config& next) {
        const auto plan = plan_reload(running, next, [this](const std::string& name) {
            return plugins_.at(name)->content_hash();
        });
        const std::uint64_t generation = running.listeners.empty() ? 1 : generation_ + 1;

        plugin_map loaded;
        for (const auto& spec : plan.load) {
            loaded[spec.name] = std::make_shared<plugin_version>(spec, dir_.path(), generation);
        }
        // Unchanged listeners keep their sockets; a moved one binds while the old still
        // listens, so there is never a moment without a listening socket.
        std::vector<std::vector<std::shared_ptr<route>>> bound;
        for (const auto& l : plan.add) bound.push_back(bind_listener(next, l, held_, shards_));
        start_all(loaded);

        // Commit: from here on nothing can fail.
        generation_ = generation;
        plugin_map current;
        for (const auto& spec : next.plugins) {
            auto it = loaded.find(spec.name);
            current[spec.name] = it != loaded.end() ? it->second : plugins_.at(spec.name);
        }
        for (auto& [name, version] : plugins_) {
            auto it = current.find(name);
            if (it == current.end() || it->second != version) {
                retire(std::move(version), next.limits.reload_drain_timeout);
            }
        }
        plugins_ = current;
        // Logged before the shards own the acceptors: afterwards only their threads touch them.
        for (const auto& [name, v] : loaded) {
            log::info("plugin " + name + ": loaded " + v->spec().file.string() + " (generation " +
                      std::to_string(generation) + ")");
        }
        std::erase_if(held_, [&](const listener_spec& h) {
            return std::find(plan.remove.begin(), plan.remove.end(), h.name) != plan.remove.end();
        });
        for (std::size_t i = 0; i < plan.add.size(); ++i) {
            const auto& l = plan.add[i];
            const auto at = bound[i].front()->acceptor.local_endpoint();
            log::info("listener " + l.name + ": listening on " + format_endpoint(at) +
                      " (framing " + std::string{to_string(l.framing)} + ", plugin " + l.plugin +
                      ")");
            held_.push_back(l);
            held_.back().port = at.port();
        }
        for (std::size_t i = 0; i < shards_.size(); ++i) {
            shard_update u;
            u.plugins = current;
            for (auto& routes : bound) u.added.push_back(routes[i]);
            u.kept = plan.keep_listeners;
            u.removed = plan.remove;
            asio::post(shards_[i]->io(), [s = shards_[i].get(), u = std::move(u)]() mutable {
                s->apply(std::move(u));
            });
        }
        std::vector<std::string> load_names, kept_listener_names, added_names;
        for (const auto& s : plan.load) load_names.push_back(s.name);
        for (const auto& l : plan.keep_listeners) kept_listener_names.push_back(l.name);
        for (const auto& l : plan.add) added_names.push_back(l.name);
        return "plugins loaded: " + join_names(load_names) + "; kept: " + join_names(plan.keep) +
               "; unloaded: " + join_names(plan.unload) +
               "; listeners added: " + join_names(added_names) +
               "; removed: " + join_names(plan.remove) +
               "; kept: " + join_names(kept_listener_names);
    }

    // An old version drains: shards drop it as their last request on it ends. If that takes
    // longer than reload_drain_timeout_ms, its remaining requests are cancelled, so old
    // versions never pile up.
    void retire(std::shared_ptr<plugin_version> version, std::chrono::milliseconds timeout) {
        auto& d = draining_.emplace_back(draining_version{
            std::move(version), clock::now(), std::make_unique<asio::steady_timer>(control_)});
        d.deadline->expires_after(timeout);
        d.deadline->async_wait([this, weak = std::weak_ptr{d.version}](
                                   const boost::system::error_code& ec) {
            auto version = weak.lock();
            if (ec || !version) return;
            log::warn("plugin " + version->spec().name + " generation " +
                      std::to_string(version->generation()) +
                      ": requests still running after reload_drain_timeout_ms; cancelling them");
            for (auto& s : shards_) {
                // The reference travels with the request so the address cannot be reused by
                // another version before the shard compares it; dropping it re-checks.
                asio::post(s->io(), [this, s = s.get(), version]() mutable {
                    s->abort_requests_on(version.get(), "ERR reload drain timeout");
                    version.reset();
                    asio::post(control_, [this] { unload_drained(); });
                });
            }
        });
    }

    void unload_drained() {
        // Shards never take a new reference to a retired version, so a use count of one
        // (ours) means no shard can reach it any more.
        for (auto it = draining_.begin(); it != draining_.end();) {
            if (it->version.use_count() > 1) {
                ++it;
                continue;
            }
            const std::string name = it->version->spec().name;
            const auto generation = it->version->generation();
            const auto drained = elapsed_ms(it->since);
            it->deadline->cancel();
            it = draining_.erase(it);  // stops and unloads the version
            log::info("plugin " + name + " generation " + std::to_string(generation) +
                      ": unloaded after draining for " + std::to_string(drained) + " ms");
        }
        if (shutting_down_) finish_if_done();
    }

    void begin_shutdown(int signo) {
        if (shutting_down_) return;
        shutting_down_ = true;
        log::info(std::string{"received "} + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                  ": no longer accepting; letting requests in flight finish (at most " +
                  std::to_string(cfg_.limits.shutdown_timeout.count()) + " ms)");
        if (watch_) watch_->close();
        for (auto& s : shards_) asio::post(s->io(), [s = s.get()] { s->begin_shutdown(); });
        shutdown_deadline_.expires_after(cfg_.limits.shutdown_timeout);
        shutdown_deadline_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            log::warn(
                "shutdown_timeout_ms reached with requests still running: abandoning "
                "them (raise /limits/shutdown_timeout_ms to let them finish)");
            for (auto& s : shards_) s->io().stop();
        });
    }

    void shard_finished() {
        ++finished_shards_;
        finish_if_done();
    }

    void finish_if_done() {
        if (finished_shards_ < shards_.size()) return;
        shutdown_deadline_.cancel();
        signals_.cancel();
        for (auto& d : draining_) d.deadline->cancel();
    }

    // --watch follows the config file and the plugin files it names, nothing else.
    std::vector<std::filesystem::path> watched_files() const {
        std::vector<std::filesystem::path> files{options_.config_file};
        for (const auto& p : cfg_.plugins) files.push_back(p.file);
        return files;
    }

    // What `plugd -s` reads: the outcome, and which configuration this server serves.
    void record(bool ok, std::string message, std::int64_t began) {
        write_reload_status(
            reload_status_file(pid_file_->path()),
            {attempt_, ok, generation_, std::move(message), began, options_.config_file});
    }

    void remove_pid_file() {
        std::error_code ignored;
        std::filesystem::remove(reload_status_file(pid_file_->path()), ignored);
        pid_file_.reset();  // removes the pid file, then releases the lock
    }

    server_config cfg_;
    server_options options_;
    std::optional<pid_file> pid_file_;  ///< held (locked) for the server's whole life
    unsigned threads_ = 1;
    private_dir dir_;
    std::uint64_t generation_ = 0;
    std::uint64_t attempt_ = 0;
    bool reload_queued_ = false;
    bool shutting_down_ = false;
    plugin_map plugins_;
    /// The listeners bound now, with their real ports (a config's port 0 is ephemeral).
    std::vector<listener_spec> held_;
    std::list<draining_version> draining_;
    asio::io_context control_{1};
    control_signals signals_{control_};
    asio::steady_timer shutdown_deadline_{control_};
    std::optional<file_watch> watch_;
    std::vector<std::unique_ptr<shard>> shards_;
    std::size_t finished_shards_ = 0;
};

}  // namespace

void check_plugins(const server_config& cfg) {
    private_dir dir;
    for (const auto& spec : cfg.plugins) plugin_version{spec, dir.path(), 1};
}

int serve(server_config cfg, const server_options& options) {
    block_control_signals();  // before the first shard thread starts, so none receives them
    server s{std::move(cfg), options};
    return s.run();
}

}  // namespace plugd
