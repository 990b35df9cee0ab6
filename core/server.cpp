// server: the running plugd, composed: pid file, host facilities, shards, the deployment
// (what serves and the reload transaction), signals, --watch and graceful shutdown.
//
// The control thread (main) owns the configuration and every plugin version; shards only
// receive finished shard_updates. A reload is prepared completely on the control thread
// (config, plugins, sockets, start()) before a single shard sees it; see
// docs/architecture.md, "The life of a reload".
#include "server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <thread>

#include "admin/admin_endpoint.hpp"
#include "admin/admin_report.hpp"
#include "admin/worker_gauges.hpp"
#include "control/control_command.hpp"
#include "control/control_signals.hpp"
#include "control/file_watch.hpp"
#include "control/pid_file.hpp"
#include "control/process_setup.hpp"
#include "control/reload_status.hpp"
#include "control/socket_activation.hpp"
#include "control/systemd_notify.hpp"
#include "control/watchdog_pings.hpp"
#include "faults/crash_report.hpp"
#include "faults/stall_monitor.hpp"
#include "host/host.hpp"
#include "host/shared_memory_map.hpp"
#include "host/topic_bridge.hpp"
#include "log.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/private_dir.hpp"
#include "reload/canary_judge.hpp"
#include "reload/deployment.hpp"
#include "reload/reload_plan.hpp"
#include "reload/restart_needed.hpp"
#include "serving/shard.hpp"
#include "serving/traffic_ledger.hpp"
#include "tls/tls_context.hpp"
#include "worker_environment.hpp"

namespace plugd {
namespace {

using clock = std::chrono::steady_clock;

long long elapsed_ms(clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - since).count();
}

unsigned or_cores(unsigned n) {
    return n != 0 ? n : std::max(1u, std::thread::hardware_concurrency());
}

// Runs on `s`'s thread; awaited from the control thread.
asio::awaitable<shard_snapshot> snapshot_of(const shard& s) {
    co_return s.snapshot();
}
asio::awaitable<shard_snapshot> canary_snapshot_of(const shard& s) {
    co_return s.canary_snapshot();
}

class server final : public admin_backend {
  public:
    /// `activated`: the sockets systemd passed, by listener name (take_activated_sockets).
    server(server_config cfg, const server_options& options, std::map<std::string, int> activated)
        : cfg_{std::move(cfg)}, options_{options}, activated_{std::move(activated)} {}
    // The admin thread calls into everything below: it stops before any of it goes, also
    // when run() leaves by an exception.
    ~server() {
        if (admin_) admin_->stop();
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    int run() {
        // First of all: a second plugd given the same pid file stops here, before it loads
        // or binds anything. (A worker's master holds it.)
        if (!options_.worker) pid_file_.emplace(cfg_.pid_file);
        raise_descriptor_limit();
        threads_ = or_cores(cfg_.threads);
        stalls_.emplace(threads_, cfg_.limits.stall_warn);
        host_.emplace(host::settings{or_cores(cfg_.offload_threads), cfg_.offload_queue,
                                     options_.worker ? options_.worker->master : 0,
                                     cfg_.topics.max_message_bytes},
                      [this] { asio::post(control_, [this] { unload_drained(); }); });
        // A worker counts where its master reads (see traffic_ledger).
        if (options_.worker && options_.worker->ledger >= 0) {
            ledger_.emplace(options_.worker->ledger);
        } else {
            ledger_.emplace();
        }
        std::vector<asio::io_context*> loops;
        for (unsigned i = 0; i < threads_; ++i) {
            shards_.push_back(std::make_unique<shard>(i, threads_, *ledger_, [this] {
                asio::post(control_, [this] { unload_drained(); });
            }));
            loops.push_back(&shards_.back()->io());
        }
        host_->set_serving_loops(std::move(loops));
        // Publishes are counted where /metrics (or a supervising master) reads them.
        for (unsigned i = 0; i < threads_; ++i)
            host_->topics().count_publishes_in(i, shards_[i]->topic_publishes());
        host_->topics().count_other_publishes_in(&ledger_->topics(threads_)->publishes);
        // With topics.redis, every topic also goes through Redis to the other processes (each
        // worker is one, with an id of its own). On shard 0: the control thread can be busy
        // for seconds in a reload.
        if (cfg_.topics.redis) {
            bridge_stats_ = &ledger_->topics(threads_)->redis;
            bridge_.emplace(*cfg_.topics.redis, cfg_.topics.max_message_bytes, host_->topics(),
                            shards_[0]->io(), topic_bridge::random_id(), *bridge_stats_);
            host_->topics().bridge_to(&*bridge_);
            bridge_->start();
        }
        deployment_.emplace(control_, shards_, *host_, dir_,
                            options_.worker ? options_.worker->first_generation : 1,
                            passed_sockets(), options_.worker.has_value());
        if (options_.worker && options_.worker->metrics) deployment_->count_for_master();
        // Start-up is a reload from nothing: the same preparation, the same all-or-nothing.
        deployment_->apply(server_config{}, cfg_);
        // A worker's master serves the admin endpoint, from what the worker publishes.
        if (cfg_.admin && !options_.worker) {
            admin_.emplace(cfg_, *this, facts());
            log::info(
                "admin endpoint: listening on " + admin_->where() +
                " (GET /healthz, /livez, /status, /metrics; POST /reload, /promote, /rollback)");
        }
        record(true, "started generation " + std::to_string(deployment_->generation()), unix_ms());
        // A worker started while its master runs a canary joins it, with its share.
        if (options_.worker && options_.worker->canary_percent > 0)
            run_reload(options_.worker->canary_percent);
        // A worker switched to "user" when it started (become_worker_user).
        if (!options_.worker) {
            drop_privileges(cfg_, dir_);
            if (!cfg_.user.empty()) {
                // The state is saved at stop by this user: it must be able to.
                for (const auto& spec : cfg_.plugins) {
                    if (!spec.state_file.empty()) check_state_file(spec.state_file, spec.name);
                }
            }
        }
        for (auto& s : shards_) {
            s->start(*stalls_, [this] { asio::post(control_, [this] { shard_finished(); }); });
        }
        wait_for_signal();
        // With workers the master watches and reloads them all; a worker never watches.
        if (options_.watch && !options_.worker) {
            watch_.emplace(control_, std::chrono::milliseconds{300}, [this] {
                log::info("--watch: a watched file changed: reloading");
                schedule_reload();
            });
            watch_->watch(watched_files());
        }
        sweep_shared_state();
        asio::co_spawn(control_, remind_of_expiring_certificates(), asio::detached);
        if (options_.worker && options_.worker->metrics)
            asio::co_spawn(control_, publish_gauges(), asio::detached);
        log::info("plugd " PLUGD_VERSION " serving generation " +
                  std::to_string(deployment_->generation()) + " with " + std::to_string(threads_) +
                  " threads (pid " + std::to_string(::getpid()) + ")");
        // Every listener is bound and every shard accepts (or will at its first turn; the
        // sockets queue connections until then).
        notify_.ready("serving generation " + std::to_string(deployment_->generation()));
        watchdog_.start();

        control_.run();
        // Its requests may wait for a shard: it ends before the shards' event loops go.
        if (admin_) admin_->stop();
        for (auto& s : shards_) s->join();
        // Offloaded jobs post their completions to the shards' event loops: stop them first.
        if (!host_->stop(shutdown_deadline_.expiry())) {
            log::error(
                "offloaded jobs still running after shutdown_timeout_ms: exiting "
                "without unloading plugins (a job must not block forever)");
            host_->state().save_all();
            pid_file_.reset();  // removes the status and pid files, then unlocks
            std::_Exit(1);
        }
        deployment_->close_outbound();  // their sockets belong to the shards' event loops
        host_->topics().stop();         // a plugin's stop() may publish: nowhere to post it now
        bridge_.reset();                // its sockets belong to shard 0's event loop
        shards_.clear();       // io_contexts and their coroutine frames go before the plugins
        deployment_->clear();  // stop() of each version may still write shared state...
        // ...so it is saved after; a state that could not be saved is an exit status of 1
        // (the error line says which file and why), never a silent 0.
        const bool saved = host_->state().save_all();
        // A worker whose master is gone (killed: it removed nothing) removes the names of
        // the master's shared memory, or they would stay in /dev/shm.
        if (options_.worker && ::getppid() != options_.worker->master)
            host_->state().remove_master_segments();
        pid_file_.reset();  // removes the status and pid files, then unlocks
        log::info(saved ? "plugd stopped"
                        : "plugd stopped; shared state not saved (exit status 1)");
        return saved ? 0 : 1;
    }

  private:
    // The listening sockets this process did not bind, by listener name: a master's, or
    // systemd's (in a worker, those systemd passed the master).
    std::map<std::string, passed_socket> passed_sockets() const {
        std::map<std::string, passed_socket> passed;
        for (const auto& [name, fd] : activated_) passed[name] = {fd, true};
        if (options_.worker) {
            for (const auto& [name, fd] : options_.worker->listeners)
                passed[name] = {fd, options_.worker->from_systemd.count(name) > 0};
        }
        return passed;
    }

    void wait_for_signal() {
        signals_.async_wait([this](int signo, int value) {
            if (signo == SIGHUP) {
                schedule_reload();
            } else if (signo == command_signal()) {
                if (const auto command = control_command::decode(value)) {
                    // Queued as the signals were: each runs after what runs now.
                    asio::co_spawn(control_, run_command(*command), asio::detached);
                } else {
                    log::warn(
                        "received the command signal (SIGRTMIN+1) without a command "
                        "(value " +
                        std::to_string(value) +
                        "): ignored; use plugd -s reload --canary PERCENT, -s promote or "
                        "-s rollback");
                }
            } else {
                stop_requested(signo);
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
            run_reload(0);
        });
    }

    struct reload_outcome {
        bool ok;
        std::string message;
        long long duration_ms;
    };

    // What `plugd -s` or the admin endpoint asked, run on the control thread.
    asio::awaitable<reload_outcome> run_command(control_command command) {
        switch (command.what) {
            case control_command::kind::reload:
                co_return run_reload(command.canary_percent);
            case control_command::kind::promote:
                co_return co_await end_canary_by_hand(true);
            case control_command::kind::rollback:
                co_return co_await end_canary_by_hand(false);
        }
        co_return reload_outcome{false, "unknown command", 0};
    }

    // A whole reload, or with `canary_percent` a canary reload (start_canary).
    reload_outcome run_reload(unsigned canary_percent) {
        ++attempt_;
        const auto started = clock::now();
        const std::int64_t began = unix_ms();
        if (shutting_down_) {
            log::warn("reload requested during shutdown: ignored");
            record(false, "shutting down", began);
            ++reloads_failed_;
            publish();
            return {false, "shutting down", 0};
        }
        if (canary_) {
            // Refused rather than replacing the canary: whoever reloads now has not seen its
            // verdict, and a second set of changes on top of it would judge neither.
            const std::string why = canary_busy();
            const std::string generation = std::to_string(deployment_->generation());
            log::error("reload refused: " + why + "; still serving generation " + generation +
                           ", unchanged",
                       {log::tag("generation", generation)});
            record(false, why, began);
            ++reloads_failed_;
            publish();
            return {false, why, 0};
        }
        notify_.reloading("reloading; serving generation " +
                          std::to_string(deployment_->generation()) + " meanwhile");
        try {
            // A worker's master hands it the canary's configuration apart from the current
            // one (which respawned workers start on), with its number.
            const bool worker_canary = options_.worker && canary_percent > 0;
            const std::filesystem::path file =
                worker_canary ? options_.worker->canary_config : options_.config_file;
            server_config next = file.empty() ? default_config(options_.bundled_plugin_dir)
                                              : load_config(file, options_.bundled_plugin_dir);
            check_no_restart_needed(cfg_, next);
            if (options_.worker)
                deployment_->number_next(
                    read_generation_file(worker_canary ? options_.worker->canary_generation_file
                                                       : options_.worker->generation_file));
            if (canary_percent > 0) {
                const std::string summary = deployment_->start_canary(cfg_, next, canary_percent);
                return begin_canary(std::move(next), summary, started, began);
            }
            const std::string summary = deployment_->apply(cfg_, next);
            cfg_ = std::move(next);
            log::set_threshold(cfg_.log.level);
            log::set_json(cfg_.log.json);
            stalls_->set_warn_after(cfg_.limits.stall_warn);
            if (watch_) watch_->watch(watched_files());
            const std::string line = "reload: generation " +
                                     std::to_string(deployment_->generation()) + " in " +
                                     std::to_string(elapsed_ms(started)) + " ms; " + summary;
            const std::string generation = std::to_string(deployment_->generation());
            log::info(line, {log::tag("generation", generation)});
            record(true, line, began);
            ++reloads_ok_;
            publish();
            notify_.reloaded("serving generation " + generation);
            return {true, line, elapsed_ms(started)};
        } catch (const std::exception& e) {
            const std::string generation = std::to_string(deployment_->generation());
            log::error(std::string{"reload failed: "} + e.what() + "; still serving generation " +
                           generation + ", unchanged",
                       {log::tag("generation", generation)});
            record(false, e.what(), began);
            ++reloads_failed_;
            publish();
            notify_.reloaded("reload failed (" + std::string{e.what()} +
                             "); still serving generation " + generation);
            return {false, e.what(), elapsed_ms(started)};
        }
    }

    // Why a reload waits while a canary runs, and what to do.
    std::string canary_busy() const {
        const auto& c = *deployment_->canary();
        return "canary generation " + std::to_string(c.generation) + " runs (" +
               std::to_string(c.percent) + "% of new requests, for " +
               std::to_string(
                   std::chrono::duration_cast<std::chrono::seconds>(clock::now() - canary_->started)
                       .count()) +
               " s): promote it (plugd -s promote, POST /promote) or roll it back (plugd -s "
               "rollback, POST /rollback) first, then reload";
    }

    // The canary deployment_ has just started, on `next`: watched from now on.
    reload_outcome begin_canary(server_config next, const std::string& summary,
                                clock::time_point started, std::int64_t began) {
        const auto& c = *deployment_->canary();
        canary_.emplace(canary_watch{std::move(next), clock::now(), began});
        const canary_settings& s = canary_->config.canary;
        const std::string serving = std::to_string(deployment_->generation());
        const std::string generation = std::to_string(c.generation);
        const auto seconds = [](std::chrono::milliseconds ms) {
            return std::to_string(ms.count() / 1000) +
                   (ms.count() % 1000 ? "." + std::to_string(ms.count() % 1000 / 100) : "") + " s";
        };
        const std::string sticky = s.sticky == canary_sticky::peer ? " (sticky by client address)"
                                   : s.sticky == canary_sticky::header
                                       ? " (sticky by header " + s.sticky_header + ")"
                                       : "";
        canary_facts& f = last_canary_.emplace();
        f.generation = c.generation;
        f.serving_generation = deployment_->generation();
        f.state = "running";
        f.percent = c.percent;
        f.settings = s;
        f.started_unix_ms = unix_ms();
        f.judged = c.judged;
        canary_state_ = "running";
        canary_generation_ = c.generation;
        canary_deadline_unix_ms_ = f.started_unix_ms + s.max_duration.count();
        const std::string line =
            "canary: generation " + generation + " takes " + std::to_string(c.percent) +
            "% of new requests" + sticky + ", next to generation " + serving +
            "; judged on plugin " + join_names(c.judged) + ": promoted after " +
            with_thousands(s.min_requests) + " requests and " + seconds(s.min_duration) +
            " within bounds, rolled back as soon as one breaks, or after " +
            seconds(s.max_duration) + " undecided (prepared in " +
            std::to_string(elapsed_ms(started)) + " ms; " + summary + ")";
        log::info(line, {log::tag("generation", generation)});
        record(true, line, began);
        ++reloads_ok_;
        publish();
        notify_.reloaded("serving generation " + serving + "; canary generation " + generation +
                         " takes " + std::to_string(c.percent) + "% of new requests");
        // A worker's master judges from every worker's figures, and tells it the verdict.
        if (!options_.worker) watch_canary();
        return {true, line, elapsed_ms(started)};
    }

    // Judges the canary every 100 ms: its verdict comes within that of the evidence.
    void watch_canary() {
        canary_tick_.expires_after(std::chrono::milliseconds{100});
        canary_tick_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !canary_ || shutting_down_) return;
            asio::co_spawn(control_, judge_canary_now(), asio::detached);
        });
    }

    // Whether canary `generation` still runs (not decided meanwhile, no stop begun).
    bool canary_runs(std::uint64_t generation) const {
        return canary_ && !shutting_down_ && deployment_->canary() &&
               deployment_->canary()->generation == generation;
    }

    std::chrono::milliseconds canary_elapsed() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() -
                                                                     canary_->started);
    }

    asio::awaitable<void> judge_canary_now() {
        if (!canary_ || !deployment_->canary()) co_return;  // decided since the tick
        const std::uint64_t generation = deployment_->canary()->generation;
        const auto shards = co_await canary_snapshots();
        if (!canary_runs(generation)) co_return;  // decided by hand meanwhile, or stopping
        const auto figures = canary_figures(shards, generation, deployment_->canary()->judged);
        const auto verdict = judge_canary(canary_->config.canary, figures, canary_elapsed());
        switch (verdict.what) {
            case canary_verdict::kind::undecided:
                watch_canary();
                break;
            case canary_verdict::kind::promote:
                end_canary(true, "promoted", figures, {}, unix_ms());
                break;
            case canary_verdict::kind::roll_back:
                end_canary(false, "rolled back", figures, verdict.why, unix_ms());
                break;
        }
    }

    // plugd -s promote|rollback, POST /promote|/rollback.
    asio::awaitable<reload_outcome> end_canary_by_hand(bool promote) {
        ++attempt_;
        const std::int64_t began = unix_ms();
        const auto refuse = [&](const std::string& why) {
            log::warn(std::string{promote ? "promote" : "rollback"} + " refused: " + why);
            record(false, why, began);
            return reload_outcome{false, why, 0};
        };
        const char* verb = promote ? "promote" : "roll back";
        if (!canary_ || shutting_down_) {
            co_return refuse(
                std::string{"no canary runs: nothing to "} + verb +
                (last_canary_ ? " (the last one, " + last_canary_->outcome + ")" : std::string{}) +
                "; start one with plugd -s reload --canary PERCENT");
        }
        const std::uint64_t generation = deployment_->canary()->generation;
        const auto shards = co_await canary_snapshots();
        if (!canary_runs(generation))
            co_return refuse("canary generation " + std::to_string(generation) +
                             " was decided meanwhile: " +
                             (last_canary_ ? last_canary_->outcome : std::string{"stopping"}));
        const auto figures = canary_figures(shards, generation, deployment_->canary()->judged);
        // A worker is told its master's verdict; its own figures are its share of them.
        const char* how = options_.worker
                              ? (promote ? "promoted by its master" : "rolled back by its master")
                          : promote ? "promoted by hand"
                                    : "rolled back by hand";
        const std::string line = end_canary(promote, how, figures, {}, began);
        co_return reload_outcome{true, line, 0};
    }

    // The verdict: the canary's versions serve every new request (promote) or none (roll
    // back); the others drain as a reload's replaced versions do. Returns the outcome line.
    std::string end_canary(bool promote, const std::string& how,
                           const std::vector<canary_instance>& figures, const std::string& why,
                           std::int64_t began) {
        const std::uint64_t generation = deployment_->canary()->generation;
        const auto elapsed = canary_elapsed();
        canary_tick_.cancel();
        if (promote) {
            deployment_->promote_canary(canary_->config);
            cfg_ = std::move(canary_->config);
            if (watch_) watch_->watch(watched_files());
        } else {
            deployment_->roll_back_canary(cfg_);
        }
        canary_.reset();
        const std::string line = canary_outcome(generation, how, figures, elapsed, why);
        last_canary_->decided(promote, figures, line, unix_ms());
        canary_state_ = last_canary_->state;
        log_canary_verdict(line, promote, generation, deployment_->generation());
        record(true, line, began);
        publish();
        notify_.status("serving generation " + std::to_string(deployment_->generation()));
        return line;
    }

    // What the admin endpoint answers from, as of now; see publish().
    std::shared_ptr<const control_facts> facts() const {
        auto f = std::make_shared<control_facts>();
        f->generation = deployment_->generation();
        f->started_unix_ms = started_unix_ms_;
        f->state = shutting_down_ ? "stopping" : draining_ ? "draining" : "serving";
        f->reloads_ok = reloads_ok_;
        f->reloads_failed = reloads_failed_;
        f->listeners = deployment_->listeners();
        f->certificates = deployment_->certificates();
        for (const auto& [name, v] : deployment_->plugins())
            f->serving.push_back(version_facts::of(*v));
        for (const auto& v : deployment_->draining()) f->draining.push_back(version_facts::of(*v));
        if (last_canary_) {
            f->canary = *last_canary_;
            if (const auto& c = deployment_->canary()) {
                for (const auto& name : c->judged)
                    f->canary->versions.push_back(version_facts::of(*c->plugins.at(name)));
            }
        }
        return f;
    }

    // Hands the admin thread a fresh copy after anything it reports changed: it never
    // reads the control thread's state, so a reload never keeps it from answering.
    void publish() {
        if (admin_) admin_->publish(facts());
    }

    // Each shard's canary figures, copied on its own thread (the control thread never reads
    // what a shard writes).
    asio::awaitable<std::vector<shard_snapshot>> canary_snapshots() {
        std::vector<shard_snapshot> all;
        for (auto& s : shards_) {
            all.push_back(
                co_await asio::co_spawn(s->io(), canary_snapshot_of(*s), asio::use_awaitable));
        }
        co_return all;
    }

    // The admin thread's questions (admin_backend), asked and answered on its thread.
    asio::awaitable<std::vector<shard_snapshot>> shard_snapshots() override {
        // shards_ is filled before the admin thread starts and emptied after it stopped.
        std::vector<shard_snapshot> all;
        for (auto& s : shards_) {
            all.push_back(co_await asio::co_spawn(s->io(), snapshot_of(*s), asio::use_awaitable));
        }
        // What no shard counts: messages published on the other threads.
        all.emplace_back().topic_publishes = host_->topics().other_publishes();
        if (bridge_stats_) all.back().redis = bridge_stats_->snapshot();
        co_return all;
    }

    std::uint64_t stalls() const noexcept override { return stalls_->stalls(); }
    std::uint64_t starvations() const noexcept override { return stalls_->starvations(); }
    std::size_t stalled_threads() const noexcept override { return stalls_->stalled_now(); }

    asio::awaitable<answer> command(control_command command) override {
        // Runs on the control thread, after whatever it is doing; the admin thread awaits
        // the outcome without blocking.
        co_return co_await asio::co_spawn(control_, command_answer(command), asio::use_awaitable);
    }

    asio::awaitable<answer> command_answer(control_command command) {
        const reload_outcome r = co_await run_command(command);
        nlohmann::json body{{"ok", r.ok},
                            {"generation", deployment_->generation()},
                            {"duration_ms", r.duration_ms}};
        body[r.ok ? "message" : "error"] = r.message;
        if (const auto& c = deployment_->canary()) body["canary_generation"] = c->generation;
        // 409: the request was fine, the state of the files it reloads was not.
        co_return answer{r.ok ? 200 : 409, body.dump() + "\n"};
    }

    // A certificate close to its expiry is warned about at load (tls_context) and again
    // once a day while it serves, so a log watcher sees it even without reloads.
    asio::awaitable<void> remind_of_expiring_certificates() {
        for (;;) {
            expiry_reminder_.expires_after(std::chrono::hours{24});
            const auto [ec] =
                co_await expiry_reminder_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || shutting_down_) co_return;
            for (const auto& [name, certificate] : deployment_->certificates()) {
                const listener_spec* l = nullptr;
                for (const auto& held : deployment_->listeners()) {
                    if (held.name == name) l = &held;
                }
                warn_if_expiring_soon(name, l && l->tls ? l->tls->certificate.string() : "",
                                      certificate);
            }
        }
    }

    // A worker tells its master what it serves and how busy it is, a few times a second
    // (see traffic_ledger): until it stops, when the shards may no longer answer.
    asio::awaitable<void> publish_gauges() {
        while (!shutting_down_) {
            std::vector<shard_snapshot> shards;
            for (auto& s : shards_) {
                shards.push_back(
                    co_await asio::co_spawn(s->io(), snapshot_of(*s), asio::use_awaitable));
                if (shutting_down_) break;
            }
            worker_gauges g = worker_gauges::of(::getpid(), *facts(), shards);
            g.stalls = stalls_->stalls();
            g.starvations = stalls_->starvations();
            g.stalled_threads = stalls_->stalled_now();
            ledger_->publish_gauges(to_document(g));
            gauge_pause_.expires_after(std::chrono::milliseconds{200});
            co_await gauge_pause_.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        worker_gauges last = worker_gauges::of(::getpid(), *facts(), {});
        last.stalls = stalls_->stalls();
        last.starvations = stalls_->starvations();
        ledger_->publish_gauges(to_document(last));
    }

    // Entries whose time to live has passed are dropped when touched; this catches the
    // rest, so a cache of expiring entries does not fill its budget with dead ones.
    void sweep_shared_state() {
        state_sweep_.expires_after(std::chrono::seconds{10});
        state_sweep_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || shutting_down_) return;
            host_->state().purge_expired();
            sweep_shared_state();
        });
    }

    void unload_drained() {
        const std::size_t draining = deployment_->draining_count();
        deployment_->unload_drained();
        if (deployment_->draining_count() != draining) publish();
        if (shutting_down_) finish_if_done();
    }

    // A stop with shutdown_delay_ms first drains: everything still serves, /healthz says
    // 503 and HTTP replies say `Connection: close`, so balancers and keep-alive clients move
    // away before a single socket closes. A second signal skips the rest of the delay.
    void stop_requested(int signo) {
        const char* name = signo == SIGINT ? "SIGINT" : "SIGTERM";
        if (shutting_down_) return;
        if (draining_ || cfg_.limits.shutdown_delay.count() == 0) {
            begin_shutdown(name);
            return;
        }
        draining_ = true;
        publish();
        notify_.stopping("draining for shutdown_delay_ms, then stopping; serving generation " +
                         std::to_string(deployment_->generation()) + " meanwhile");
        // The line says what is true: it is written once every shard has begun to drain, so
        // a reply after it says `Connection: close`.
        auto waiting = std::make_shared<std::size_t>(shards_.size());
        const auto announce = [this, name, waiting] {
            if (--*waiting > 0) return;
            log::info(std::string{"received "} + name + ": draining for shutdown_delay_ms (" +
                      std::to_string(cfg_.limits.shutdown_delay.count()) +
                      " ms): /healthz answers 503 and HTTP replies close their connections; "
                      "still serving meanwhile");
        };
        for (auto& s : shards_) {
            asio::post(s->io(), [this, s = s.get(), announce] {
                s->begin_drain();
                asio::post(control_, announce);
            });
        }
        drain_delay_.expires_after(cfg_.limits.shutdown_delay);
        drain_delay_.async_wait([this, name](const boost::system::error_code& ec) {
            if (!ec) begin_shutdown(name);
        });
    }

    void begin_shutdown(const char* signal_name) {
        if (shutting_down_) return;
        shutting_down_ = true;
        publish();
        notify_.stopping("stopping: letting requests in flight finish (generation " +
                         std::to_string(deployment_->generation()) + ")");
        drain_delay_.cancel();
        gauge_pause_.cancel();
        expiry_reminder_.cancel();
        canary_tick_.cancel();
        if (const auto& c = deployment_->canary()) {
            log::info("stopping while canary generation " + std::to_string(c->generation) +
                      " runs: neither promoted nor rolled back (a start serves what server.json "
                      "names)");
        }
        log::info(std::string{"received "} + signal_name +
                  ": no longer accepting; letting requests in flight finish (at most " +
                  std::to_string(cfg_.limits.shutdown_timeout.count()) + " ms)");
        if (watch_) watch_->close();
        deployment_->cancel_tasks();
        // Its connections would keep shard 0's event loop from ever running out of work.
        if (bridge_) bridge_->stop();
        for (auto& s : shards_) asio::post(s->io(), [s = s.get()] { s->begin_shutdown(); });
        shutdown_deadline_.expires_after(cfg_.limits.shutdown_timeout);
        shutdown_deadline_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            log::warn(
                "shutdown_timeout_ms reached with requests still running: abandoning "
                "them (raise /limits/shutdown_timeout_ms to let them finish)");
            abandoned_ = true;
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
        state_sweep_.cancel();
        expiry_reminder_.cancel();
        watchdog_.stop();
        signals_.cancel();
        if (admin_) admin_->close();
        deployment_->cancel_timers();
        // A scrape waiting for a shard that was stopped with work left would wait forever
        // and keep this loop alive: after abandoning requests, abandon it too.
        if (abandoned_) control_.stop();
    }

    // --watch follows the config file and the plugin files it names, nothing else.
    std::vector<std::filesystem::path> watched_files() const {
        std::vector<std::filesystem::path> files{options_.config_file};
        for (const auto& p : cfg_.plugins) files.push_back(p.file);
        append_tls_files(cfg_, files);
        return files;
    }

    // What `plugd -s` reads: the outcome, and which configuration this server serves.
    void record(bool ok, std::string message, std::int64_t began) {
        write_reload_status(
            options_.worker ? options_.worker->status_file : reload_status_file(pid_file_->path()),
            {attempt_, ok, deployment_->generation(), std::move(message), began,
             options_.config_file, canary_state_, canary_generation_, canary_deadline_unix_ms_});
    }

    // Member order is destruction order, reversed: the deployment (plugin versions) goes
    // before the host whose facilities their contexts use, and both after the shards.
    //
    // The admin endpoint goes last: its thread is stopped first (~server, or after run),
    // but a request of it may still wait in the control thread's or a shard's event loop
    // (a POST /reload, a snapshot) when that loop is destroyed, which destroys the waiting
    // admin coroutine: its sockets belong to the admin event loop, which must still exist.
    std::optional<admin_endpoint> admin_;
    server_config cfg_;
    server_options options_;
    std::map<std::string, int> activated_;  ///< sockets systemd passed, by listener name
    std::optional<pid_file> pid_file_;      ///< held (locked) for the server's whole life
    unsigned threads_ = 1;
    private_dir dir_;
    std::uint64_t attempt_ = 0;
    bool reload_queued_ = false;
    bool shutting_down_ = false;
    bool draining_ = false;   ///< shutdown_delay_ms runs
    bool abandoned_ = false;  ///< shutdown_timeout_ms stopped the shards with work left
    std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
    // A canary running (deployment_->canary()): the configuration it loaded (the one served
    // once it is promoted), when it started, and when its start was asked for.
    struct canary_watch {
        server_config config;
        clock::time_point started;
        std::int64_t began_unix_ms = 0;
    };
    std::optional<canary_watch> canary_;
    std::optional<canary_facts> last_canary_;  ///< running, or the last one decided
    // What the status file says of the last canary (reload_status).
    std::string canary_state_;
    std::uint64_t canary_generation_ = 0;
    std::int64_t canary_deadline_unix_ms_ = 0;
    std::int64_t started_unix_ms_ = unix_ms();
    asio::io_context control_{1};
    control_signals signals_{control_};
    asio::steady_timer shutdown_deadline_{control_};
    asio::steady_timer state_sweep_{control_};
    asio::steady_timer drain_delay_{control_};
    asio::steady_timer gauge_pause_{control_};
    asio::steady_timer expiry_reminder_{control_};
    asio::steady_timer canary_tick_{control_};
    std::optional<file_watch> watch_;
    std::optional<host> host_;
    std::optional<deployment> deployment_;
    std::optional<stall_monitor> stalls_;   ///< outlives the shards, which beat for it
    std::optional<traffic_ledger> ledger_;  ///< outlives the shards, which count in it
    // Constructed with the server, before any thread starts (it unsets variables). In a
    // worker it sends nothing: the master keeps NOTIFY_SOCKET from it.
    systemd_notify notify_;
    // A stalled serving thread withholds the ping: systemd then restarts a wedged plugd.
    watchdog_pings watchdog_{control_, notify_, [this] { return stalls_->stalled_now() == 0; }};
    std::vector<std::unique_ptr<shard>> shards_;
    // After shards_, so that it goes first: its sockets belong to shard 0's event loop.
    std::optional<topic_bridge> bridge_;          ///< with topics.redis only
    topic_bridge_stats* bridge_stats_ = nullptr;  ///< its counters, in ledger_
    std::size_t finished_shards_ = 0;
};

}  // namespace

void check_plugins(const server_config& cfg) {
    private_dir dir;
    host facilities{host::settings{1, 1}, [] {}};
    std::map<std::string, std::shared_ptr<plugin_version>> loaded;
    for (const auto& spec : cfg.plugins) {
        if (!spec.state_file.empty()) check_state_file(spec.state_file, spec.name);
        loaded[spec.name] = std::make_shared<plugin_version>(spec, dir.path(), 1, facilities);
    }
    check_listeners_can_serve(
        cfg, [&](const std::string& name) -> const plugin_version& { return *loaded.at(name); });
    for (const auto& l : cfg.listeners) make_tls_context(cfg, l);  // reads and checks the files
}

int serve(server_config cfg, const server_options& options) {
    block_control_signals();  // before the first shard thread starts, so none receives them
    install_crash_report();
    if (options.worker) {
        // A worker outlives no master: if the master goes, so does it (drained).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        // A master that died before that line sends no signal: its worker would serve on,
        // unsupervised, holding its sockets and its log's pipe.
        if (::getppid() != options.worker->master) {
            log::error("worker " + std::to_string(options.worker->index) + ": its master (pid " +
                       std::to_string(options.worker->master) +
                       ") ended while it started; stopping");
            // Nor does it leave the master's shared memory behind: a worker removes those
            // names when it stops (remove_master_segments), but this one never mapped them,
            // and if no worker got further, nothing else ever would.
            for (const auto& spec : cfg.plugins) {
                ::shm_unlink(
                    shared_memory_map::segment_name(options.worker->master, spec.name).c_str());
            }
            return 1;
        }
    }
    // Taken before any thread starts (it unsets LISTEN_FDS); a worker takes its sockets
    // from its master instead (who kept systemd's variables from it).
    std::map<std::string, int> activated;
    if (!options.worker) activated = take_activated_sockets(cfg);
    server s{std::move(cfg), options, std::move(activated)};
    return s.run();
}

}  // namespace plugd
