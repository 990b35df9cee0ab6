// supervisor: the master process: sockets, workers, respawns, combined reloads, the stop.
#include "supervision/supervisor.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "admin/admin_endpoint.hpp"
#include "control/control_command.hpp"
#include "control/control_signals.hpp"
#include "control/file_watch.hpp"
#include "control/pid_file.hpp"
#include "control/process_setup.hpp"
#include "control/reload_status.hpp"
#include "control/socket_activation.hpp"
#include "control/systemd_notify.hpp"
#include "control/watchdog_pings.hpp"
#include "host/shared_state.hpp"
#include "log.hpp"
#include "reload/canary_judge.hpp"
#include "reload/reload_plan.hpp"
#include "reload/restart_needed.hpp"
#include "supervision/generation_store.hpp"
#include "supervision/master_admin.hpp"
#include "supervision/worker_board.hpp"
#include "supervision/worker_folder.hpp"
#include "tls/certificate_facts.hpp"
#include "tls/ticket_keys.hpp"
#include "worker_environment.hpp"

extern char** environ;

namespace plugd {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string exit_text(int status) {
    if (WIFSIGNALED(status)) {
        const char* name = ::sigabbrev_np(WTERMSIG(status));
        return std::string{"died of "} + (name ? std::string{"SIG"} + name : "a signal");
    }
    return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// One listening socket of the master, shared by every worker (one accept queue).
int bind_shared(const server_config& cfg, const listener_spec& l) {
    const tcp::endpoint at{asio::ip::make_address(l.address), l.port};
    const int fd = ::socket(at.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    auto fail = [&](const char* step) {
        const std::string why = std::strerror(errno);
        if (fd >= 0) ::close(fd);
        throw config_error("listener \"" + l.name + "\" (" + cfg.source.string() + "): cannot " +
                           step + " " + l.address + ":" + std::to_string(l.port) + ": " + why +
                           "; choose another port, or stop what listens there");
    };
    if (fd < 0) fail("open a socket for");
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, at.data(), static_cast<socklen_t>(at.size())) != 0) fail("bind");
    if (::listen(fd, SOMAXCONN) != 0) fail("listen on");
    return fd;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                          : reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

// The address `fd` listens on, as its "listening on" line says (a socket from systemd
// listens where its .socket unit says, not necessarily where the configuration does).
std::string bound_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    char text[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr, text, sizeof text);
    } else {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(ss).sin_addr, text, sizeof text);
    }
    return text;
}

class supervisor {
  public:
    supervisor(server_config cfg, const server_options& options)
        : cfg_{std::move(cfg)}, options_{options} {}
    // The admin thread calls into the board and the backend: it stops before they go,
    // also when run() leaves by an exception.
    ~supervisor() {
        if (admin_) admin_->stop();
    }
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    int run() {
        prepare_worker_user();
        pid_file_.emplace(cfg_.pid_file);
        raise_descriptor_limit();
        open_listeners();
        // Workers read the master's copy of the configuration, pointing at its copies of the
        // plugin files: a rollback can go back to them after the originals have changed.
        store_.emplace(pid_file_->path().string() + ".generations",
                       worker_user_ ? std::optional<gid_t>{worker_user_->gid} : std::nullopt);
        folder_.emplace(pid_file_->path().string() + ".workers", worker_user_);
        store_->keep(1, cfg_);
        store_->make_current(1);
        make_shared_state(cfg_);
        read_certificates();
        // Every worker counts in a ledger the master reads: a canary's figures always, the
        // traffic for /metrics with an admin endpoint.
        board_.emplace(cfg_.workers);
        start_admin();
        record(true, "started generation 1", unix_ms());
        start_trial();
        for (unsigned i = 0; i < cfg_.workers; ++i) {
            workers_.push_back(std::make_unique<worker>(io_));
            spawn(i);
        }
        wait_for_signal();
        if (options_.watch) watch_files();
        watchdog_.start();
        notify_.status("starting " + std::to_string(cfg_.workers) + " workers on generation 1");
        poll_workers_serving();
        log::info("plugd " PLUGD_VERSION " supervising " + std::to_string(cfg_.workers) +
                  " worker processes (master pid " + std::to_string(::getpid()) + ")");
        if (cfg_.workers > 1 && !cfg_.topics.redis)
            log::warn(
                "topics are per worker process: a message published in one worker reaches "
                "only that worker's subscribers; to share topics between workers, add "
                "/topics/redis (see \"Topics across processes: Redis\" in "
                "docs/operations.md)");
        io_.run();
        // Its requests may wait for this thread's loop: it ends before anything goes.
        if (admin_) admin_->stop();
        const bool saved = save_shared_state();
        for (auto& [name, s] : sockets_) ::close(s.fd);
        folder_.reset();
        store_.reset();
        pid_file_.reset();
        log::info(saved ? "plugd stopped"
                        : "plugd stopped; shared state not saved (exit status 1)");
        return saved ? 0 : 1;
    }

  private:
    struct shared_socket {
        int fd;
        std::string address;
        std::uint16_t port;
        bool from_systemd = false;  ///< passed by systemd: see passed_socket
    };
    struct worker {
        explicit worker(asio::io_context& io) : exited{io}, respawn{io} {}
        pid_t pid = -1;
        std::optional<asio::posix::stream_descriptor> exited;  ///< its pidfd
        asio::steady_timer respawn;
        milliseconds backoff{0};
        unsigned restarts = 0;
        std::int64_t started_unix_ms = 0;
        std::int64_t down_since_unix_ms = 0;
        std::uint64_t attempt_before_reload = 0;
        pid_t signalled = -1;  ///< the process the last reload signal went to
    };

    std::filesystem::path status_file(unsigned i) const { return folder_->status_file(i); }
    std::filesystem::path crash_note(unsigned i) const { return folder_->crash_note(i); }

    // "user": the master stays root, to bind and to supervise; each worker switches to the
    // user as it starts (become_worker_user), as nginx's workers do. Refused here, before
    // anything is bound, when that cannot work.
    void prepare_worker_user() {
        if (cfg_.user.empty()) return;
        worker_user_ = account_to_run_as(cfg_);
        check_master_folder(cfg_, *worker_user_);
        log::info("master: stays root to bind and supervise; workers run as user " + cfg_.user +
                  " (uid " + std::to_string(worker_user_->uid) + ")");
    }

    void spawn(unsigned i) {
        worker& w = *workers_[i];
        // The copy current now and its number: during a reload, the new one.
        worker_environment env;
        env.index = i;
        env.master = ::getpid();
        env.first_generation = store_->current();
        env.generation_file = store_->current_generation_file();
        env.status_file = status_file(i);
        env.user = cfg_.user;
        for (const auto& [name, s] : sockets_) {
            env.listeners[name] = s.fd;
            if (s.from_systemd) env.from_systemd.insert(name);
        }
        env.ledger = board_->ledger_file(i);
        env.metrics = cfg_.admin.has_value();
        env.canary_config = store_->canary_config();
        env.canary_generation_file = store_->canary_generation_file();
        // A canary starting or running: the new worker joins it (one being decided: the
        // store's current copy is already what the verdict leads to).
        if (canary_ && canary_->step != canary_run::phase::ending)
            env.canary_percent = canary_->percent;
        env.tickets = ticket_secret_file();
        std::error_code ignored;
        std::filesystem::remove(env.status_file, ignored);

        std::vector<std::string> variables;
        for (char** e = environ; *e; ++e) {
            if (!kept_from_workers(*e)) variables.emplace_back(*e);
        }
        variables.push_back(std::string{worker_variable} + "=" + encode(env));
        std::vector<char*> envp;
        for (auto& v : variables) envp.push_back(v.data());
        envp.push_back(nullptr);
        std::string self = "/proc/self/exe", c = "-c", file = store_->current_config().string();
        std::vector<char*> argv{self.data(), c.data(), file.data(), nullptr};
        std::filesystem::remove(crash_note(i), ignored);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        // The worker starts with the control signals blocked (a mask survives exec):
        // one sent before it reads them from its signalfd waits instead of killing it.
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        sigset_t blocked;
        sigemptyset(&blocked);
        for (const int signo : {SIGHUP, SIGINT, SIGTERM, command_signal()})
            sigaddset(&blocked, signo);
        posix_spawnattr_setsigmask(&attributes, &blocked);
        // Its own process group: a terminal's Ctrl-C reaches the master alone, which tells
        // each worker once (a second signal would cut a worker's drain short).
        posix_spawnattr_setpgroup(&attributes, 0);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
        // dup2 onto itself clears close-on-exec: the worker inherits exactly these.
        for (const auto& [name, s] : sockets_)
            posix_spawn_file_actions_adddup2(&actions, s.fd, s.fd);
        if (env.ledger >= 0) posix_spawn_file_actions_adddup2(&actions, env.ledger, env.ledger);
        if (env.tickets >= 0) posix_spawn_file_actions_adddup2(&actions, env.tickets, env.tickets);
        const int rc =
            ::posix_spawn(&w.pid, self.c_str(), &actions, &attributes, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
        if (rc != 0) {
            log::error("master: cannot start worker " + std::to_string(i) + ": " +
                       std::strerror(rc) + "; trying again in 1 s");
            w.pid = -1;
            schedule_respawn(i, milliseconds{1000});
            return;
        }
        const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, w.pid, 0));
        if (pidfd < 0) {
            // Without a pidfd its exit could not be noticed: do not leave it unwatched.
            log::error("master: cannot watch worker " + std::to_string(i) + " (pidfd_open: " +
                       std::strerror(errno) + "); stopping it and trying again in 1 s");
            ::kill(w.pid, SIGKILL);
            while (::waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
            }
            w.pid = -1;
            schedule_respawn(i, milliseconds{1000});
            return;
        }
        w.started_unix_ms = unix_ms();
        publish();
        w.exited.emplace(io_, pidfd);
        w.exited->async_wait(asio::posix::stream_descriptor::wait_read,
                             [this, i](const boost::system::error_code& ec) {
                                 if (!ec) on_exit(i);
                             });
    }

    void schedule_respawn(unsigned i, milliseconds delay) {
        worker& w = *workers_[i];
        w.respawn.expires_after(delay);
        w.respawn.async_wait([this, i](const boost::system::error_code& ec) {
            if (!ec && !stopping_) spawn(i);
        });
    }

    void on_exit(unsigned i) {
        worker& w = *workers_[i];
        int status = 0;
        while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
        }
        w.exited.reset();  // closes the pidfd
        const pid_t pid = std::exchange(w.pid, -1);
        // Nothing it counted is lost: it is dead, so its ledger holds the final figures.
        if (board_) board_->worker_exited(i);
        w.down_since_unix_ms = unix_ms();
        publish();
        if (stopping_) {
            if (std::none_of(workers_.begin(), workers_.end(),
                             [](const auto& x) { return x->pid > 0; }))
                finish();
            return;
        }
        // A worker that had started (it recorded generation 1 or later) is replaced at
        // once; one that died while starting is retried with a growing pause, so a
        // configuration that cannot start does not spin.
        const bool had_started = read_reload_status(status_file(i)).has_value();
        w.backoff = had_started
                        ? milliseconds{0}
                        : std::min(milliseconds{5000}, std::max(milliseconds{100}, w.backoff * 2));
        ++w.restarts;
        ++restarts_;
        log::warn(
            "master: worker " + std::to_string(i) + " (pid " + std::to_string(pid) + ") " +
                exit_text(status) +
                (WIFSIGNALED(status) ? " (its crash report above names the plugin)" : "") +
                "; its connections are lost, the others serve on; starting it again" +
                (w.backoff.count() ? " in " + std::to_string(w.backoff.count()) + " ms" : "") +
                " (restart " + std::to_string(w.restarts) + ")",
            {log::tag("worker", std::to_string(i)), log::tag("pid", std::to_string(pid))});
        if (WIFSIGNALED(status)) count_crash(i);
        if (reloading_) note_reload_progress();
        if (commanding_) note_command_progress();
        schedule_respawn(i, w.backoff);
    }

    // Crashes soon after a reload (or the start) are the new generation's: enough of them
    // within the window roll every worker back to the last generation that ran a whole
    // window without that many.
    void count_crash(unsigned i) {
        std::string plugin = folder_->crashed_plugin(i);
        if (canary_) {
            // A crash in the canary's version is one of its requests failed: the judge
            // counts it. While a canary runs, crashes roll nothing back by themselves: its
            // verdict decides, and the crash-loop rollback's trial starts again after it.
            if (!plugin.empty() && folder_->crashed_generation(i) == canary_->generation)
                board_->count_canary_crash(plugin, canary_->generation);
            return;
        }
        if (plugin.empty()) plugin = "(the core)";
        if (!on_trial_ || cfg_.rollback_after_crashes == 0) return;
        const auto now = clock::now();
        if (now - trial_since_ > cfg_.rollback_window) return;
        crashes_.push_back(plugin);
        if (crashes_.size() < cfg_.rollback_after_crashes) return;
        std::map<std::string, std::size_t> by_plugin;
        for (const auto& p : crashes_) ++by_plugin[p];
        const auto worst =
            std::max_element(by_plugin.begin(), by_plugin.end(),
                             [](const auto& a, const auto& b) { return a.second < b.second; });
        const std::string crashes =
            std::to_string(crashes_.size()) + " crashes of plugin " + worst->first + " within " +
            std::to_string(std::chrono::duration_cast<milliseconds>(now - trial_since_).count()) +
            " ms of generation " + std::to_string(generation_) +
            "'s start (rollback_after_crashes " + std::to_string(cfg_.rollback_after_crashes) + ")";
        on_trial_ = false;
        crashes_.clear();
        trial_timer_.cancel();
        if (good_ == 0 || good_ == generation_) {
            // Never back to the generation that crashes: without one that proved itself
            // there is nothing to go back to.
            log::error("master: " + crashes +
                           "; no earlier generation ran a whole rollback_window_ms without "
                           "reaching rollback_after_crashes, so there is none to roll back to: "
                           "crashed workers keep being started again; fix the plugin and reload",
                       {log::tag("plugin", worst->first)});
            return;
        }
        rollback_note_ = "rolled back to generation " + std::to_string(good_) + " after " +
                         std::to_string(cfg_.rollback_after_crashes) + " crashes of plugin " +
                         worst->first;
        log::error("master: " + rollback_note_ + " (" + crashes +
                       "); every worker goes back to its configuration and plugin files; fix "
                       "the plugin and reload",
                   {log::tag("plugin", worst->first)});
        if (reloading_) {
            rollback_pending_ = true;  // once the reload running now has its outcome
        } else {
            start_rollback();
        }
    }

    void start_rollback() { revert_to(good_); }

    // Every worker reloads kept generation `source`'s files in place, as a new generation (a
    // rollback, or undoing a reload that some workers took and others refused): numbers
    // only go up, so no two configurations ever share one.
    void revert_to(std::uint64_t source) {
        const std::uint64_t number = last_number_ + 1;
        try {
            // Instances the source has and the running generation dropped get theirs back.
            make_shared_state(load_config(store_->config_of(source), options_.bundled_plugin_dir));
            store_->keep_as(number, source);
            store_->make_current(number);
        } catch (const std::exception& e) {
            log::error("master: cannot go back to generation " + std::to_string(source) + ": " +
                       e.what() + "; the workers stay as they are");
            return;
        }
        last_number_ = number;
        pending_ = number;
        rolling_back_ = true;
        revert_source_ = source;
        signal_workers();
    }

    void wait_for_signal() {
        signals_.async_wait([this](int signo, int value) {
            if (signo == SIGHUP) {
                request_reload();
            } else if (signo == command_signal()) {
                if (const auto command = control_command::decode(value)) {
                    request_command(*command, {});
                } else {
                    log::warn(
                        "master: received the command signal (SIGRTMIN+1) without a "
                        "command (value " +
                        std::to_string(value) +
                        "): ignored; use plugd -s reload --canary PERCENT, -s promote or "
                        "-s rollback");
                }
            } else {
                stop(signo);
            }
            if (!done_) wait_for_signal();
        });
    }

    // What `plugd -s` or POST /reload?canary=, /promote, /rollback asked: now, or once the
    // reload or command running has its outcome (one at a time, as reloads are, so that
    // each outcome is its own).
    using reply = std::function<void(admin_backend::answer)>;
    void request_command(const control_command& command, reply answer) {
        if (reloading_ || commanding_) {
            queued_commands_.push_back({command, std::move(answer)});
            return;
        }
        run_command(command, std::move(answer));
    }

    void run_command(const control_command& command, reply answer) {
        switch (command.what) {
            case control_command::kind::reload:
                if (command.canary_percent == 0) {
                    request_reload();
                    return;
                }
                start_canary(command.canary_percent, std::move(answer));
                return;
            case control_command::kind::promote:
            case control_command::kind::rollback:
                end_canary_by_hand(command.what == control_command::kind::promote,
                                   std::move(answer));
                return;
        }
    }

    // The next queued reload or command, once nothing runs.
    void run_next() {
        if (reloading_ || commanding_) return;
        if (std::exchange(rollback_pending_, false)) {
            start_rollback();
            return;
        }
        if (std::exchange(reload_pending_, false)) {
            reload();
            return;
        }
        if (queued_commands_.empty()) return;
        auto [command, answer] = std::move(queued_commands_.front());
        queued_commands_.pop_front();
        run_command(command, std::move(answer));
    }

    // A canary command's outcome: recorded for `plugd -s` (as a reload's is) and answered to
    // the admin request that asked for it, if one did. `reload`: counted as a reload (a
    // canary's start) or not (its end).
    void command_outcome(bool ok, const std::string& message, std::int64_t began, bool reload,
                         const reply& answer) {
        if (!reload) counted_attempt_ = attempt_;  // not a reload for plugd_reloads_total
        record(ok, message, began);
        if (!answer) return;
        nlohmann::json body{
            {"ok", ok}, {"generation", generation_}, {"duration_ms", unix_ms() - began}};
        body[ok ? "message" : "error"] = message;
        if (canary_) body["canary_generation"] = canary_->generation;
        answer({ok ? 200 : 409, body.dump() + "\n"});
    }

    std::string canary_busy() const {
        const char* how = canary_->step == canary_run::phase::starting ? "is starting"
                          : canary_->step == canary_run::phase::ending ? "is being decided"
                                                                       : "runs";
        return "canary generation " + std::to_string(canary_->generation) + " " + how + " (" +
               std::to_string(canary_->percent) + "% of new requests): promote it (plugd -s " +
               "promote, POST /promote) or roll it back (plugd -s rollback, POST /rollback) " +
               "first, then reload";
    }

    // Every live worker carries `command` out (the command signal, queued with it); `done`
    // gets the outcome once each has recorded one newer than it, died, or let 60 s pass.
    struct command_outcome_set {
        std::vector<std::string> failures;
        std::string summary;    ///< the first worker's line
        bool replaced = false;  ///< a worker started meanwhile, in the state it leads to
    };
    void command_workers(const control_command& command,
                         std::function<void(command_outcome_set)> done) {
        commanding_ = std::move(done);
        command_deadline_ = clock::now() + std::chrono::seconds{60};
        for (unsigned i = 0; i < workers_.size(); ++i) {
            worker& w = *workers_[i];
            const auto before = read_reload_status(status_file(i));
            w.attempt_before_reload = before ? before->attempt : 0;
            w.signalled = w.pid;
            if (w.pid > 0) {
                sigval value{};
                value.sival_int = command.encode();
                ::sigqueue(w.pid, command_signal(), value);
            }
        }
        poll_command();
    }

    void poll_command() {
        command_poll_.expires_after(milliseconds{10});
        command_poll_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) note_command_progress();
        });
    }

    void note_command_progress() {
        if (!commanding_) return;
        command_outcome_set outcome;
        bool waiting = false;
        for (unsigned i = 0; i < workers_.size(); ++i) {
            const worker& w = *workers_[i];
            if (w.pid <= 0) continue;
            if (w.pid != w.signalled) {
                outcome.replaced = true;
                continue;
            }
            const auto s = read_reload_status(status_file(i));
            if (!s || s->attempt <= w.attempt_before_reload) {
                waiting = true;
                if (clock::now() >= command_deadline_)
                    outcome.failures.push_back("worker " + std::to_string(i) +
                                               " did not report an outcome within 60 s");
            } else if (!s->ok) {
                outcome.failures.push_back("worker " + std::to_string(i) + " (pid " +
                                           std::to_string(w.pid) + "): " + s->message);
            } else if (outcome.summary.empty()) {
                outcome.summary = s->message;
            }
        }
        if (waiting && clock::now() < command_deadline_) {
            poll_command();
            return;
        }
        command_poll_.cancel();
        auto done = std::exchange(commanding_, {});
        done(std::move(outcome));
        run_next();
    }

    // plugd -s reload --canary PERCENT: the master keeps the new configuration's copy as the
    // canary's generation (not current: a worker started meanwhile starts on the generation
    // serving, then joins the canary), and every worker starts it with the same split.
    void start_canary(unsigned percent, reply answer) {
        ++attempt_;
        const std::int64_t began = unix_ms();
        if (stopping_) {
            command_outcome(false, "shutting down", began, true, answer);
            return;
        }
        if (canary_) {
            const std::string why = canary_busy();
            log::error("reload refused: " + why + "; every worker still serves generation " +
                       std::to_string(generation_) + ", unchanged");
            command_outcome(false, why, began, true, answer);
            return;
        }
        std::uint64_t number = 0;
        server_config next;
        try {
            next = options_.config_file.empty()
                       ? default_config(options_.bundled_plugin_dir)
                       : load_config(options_.config_file, options_.bundled_plugin_dir);
            check_no_restart_needed(cfg_, next);
            number = last_number_ + 1;
            store_->keep(number, next);
            last_number_ = number;
            store_->make_canary(number);
        } catch (const std::exception& e) {
            log::error(std::string{"canary refused: "} + e.what() +
                       "; every worker still serves generation " + std::to_string(generation_) +
                       ", unchanged");
            command_outcome(false, e.what(), began, true, answer);
            return;
        }
        canary_.emplace(canary_run{number, percent, std::move(next), clock::now(), began,
                                   canary_run::phase::starting});
        publish();
        command_workers({control_command::kind::reload, percent},
                        [this, number, began, answer](command_outcome_set o) {
                            canary_started(number, began, answer, std::move(o));
                        });
    }

    void canary_started(std::uint64_t number, std::int64_t began, const reply& answer,
                        command_outcome_set o) {
        if (!canary_ || canary_->generation != number) return;
        if (!o.failures.empty()) {
            std::string why;
            for (const auto& f : o.failures) why += (why.empty() ? "" : "; ") + f;
            log::error("canary refused: " + why + "; every worker serves generation " +
                       std::to_string(generation_) + " (generation " + std::to_string(number) +
                       " is not used again)");
            // Those that started it (or joined it as they started) end it.
            const bool started_somewhere = !o.summary.empty() || o.replaced;
            store_->end_canary();
            canary_.reset();
            command_outcome(false, why, began, true, answer);
            store_->forget_all_but({good_, generation_});
            if (started_somewhere)
                command_workers({control_command::kind::rollback}, [](command_outcome_set) {});
            return;
        }
        canary_->step = canary_run::phase::running;
        canary_->started = clock::now();
        const canary_settings& s = canary_->config.canary;
        canary_facts& f = last_canary_.emplace();
        f.generation = number;
        f.serving_generation = generation_;
        f.state = "running";
        f.percent = canary_->percent;
        f.settings = s;
        f.started_unix_ms = unix_ms();
        canary_state_ = "running";
        canary_generation_ = number;
        canary_deadline_unix_ms_ = f.started_unix_ms + s.max_duration.count();
        const std::string line =
            (o.summary.empty() ? "canary: generation " + std::to_string(number) + " takes " +
                                     std::to_string(canary_->percent) + "% of new requests"
                               : o.summary) +
            "; in each of the " + std::to_string(workers_.size()) +
            " workers, judged by the master from their figures summed";
        log::info("master: " + line, {log::tag("generation", std::to_string(number))});
        command_outcome(true, line, began, true, answer);
        notify_.reloaded(serving_status() + "; canary generation " + std::to_string(number) +
                         " takes " + std::to_string(canary_->percent) + "% of new requests");
        watch_canary();
    }

    // The judge, every 100 ms, on every worker's figures (and those of workers that died).
    void watch_canary() {
        canary_tick_.expires_after(milliseconds{100});
        canary_tick_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !canary_ || canary_->step != canary_run::phase::running || stopping_) return;
            if (commanding_ || reloading_) {  // a command of the workers has its turn first
                watch_canary();
                return;
            }
            const auto figures = canary_figures_now();
            const auto verdict = judge_canary(
                canary_->config.canary, figures,
                std::chrono::duration_cast<milliseconds>(clock::now() - canary_->started));
            switch (verdict.what) {
                case canary_verdict::kind::undecided:
                    watch_canary();
                    break;
                case canary_verdict::kind::promote:
                    end_canary(true, "promoted", figures, {}, unix_ms(), {});
                    break;
                case canary_verdict::kind::roll_back:
                    end_canary(false, "rolled back", figures, verdict.why, unix_ms(), {});
                    break;
            }
        });
    }

    // The canary's figures summed over the workers' ledgers (the instances it changed are
    // those its records are of: every worker's shards make them as the canary starts).
    std::vector<canary_instance> canary_figures_now() {
        const auto shards = board_->snapshots();
        std::set<std::string> names;
        for (const auto& s : shards) {
            for (const auto& part : s.canary) {
                if (part.stats.canary == canary_->generation) names.insert(part.instance);
            }
        }
        std::vector<std::string> judged{names.begin(), names.end()};
        if (last_canary_) last_canary_->judged = judged;
        return canary_figures(shards, canary_->generation, judged);
    }

    // plugd -s promote|rollback, POST /promote|/rollback.
    void end_canary_by_hand(bool promote, reply answer) {
        ++attempt_;
        const std::int64_t began = unix_ms();
        const char* verb = promote ? "promote" : "roll back";
        std::string why;
        if (!canary_ || stopping_) {
            why = std::string{"no canary runs: nothing to "} + verb +
                  (last_canary_ && !last_canary_->outcome.empty()
                       ? " (the last one, " + last_canary_->outcome + ")"
                       : std::string{}) +
                  "; start one with plugd -s reload --canary PERCENT";
        } else if (canary_->step != canary_run::phase::running) {
            why = "canary generation " + std::to_string(canary_->generation) +
                  (canary_->step == canary_run::phase::starting ? " is starting"
                                                                : " is being decided") +
                  ": try again once it has its outcome";
        }
        if (!why.empty()) {
            log::warn(std::string{"master: "} + (promote ? "promote" : "rollback") +
                      " refused: " + why);
            command_outcome(false, why, began, false, answer);
            return;
        }
        end_canary(promote, promote ? "promoted by hand" : "rolled back by hand",
                   canary_figures_now(), {}, began, std::move(answer));
    }

    // The verdict: every worker promotes the canary (its versions serve every new request;
    // the generation becomes current) or rolls it back; then the outcome.
    void end_canary(bool promote, const std::string& how,
                    const std::vector<canary_instance>& figures, const std::string& why,
                    std::int64_t began, reply answer) {
        canary_tick_.cancel();
        canary_->step = canary_run::phase::ending;
        const std::uint64_t number = canary_->generation;
        const auto elapsed =
            std::chrono::duration_cast<milliseconds>(clock::now() - canary_->started);
        // A worker started from now on starts in the state the verdict leads to.
        if (promote) store_->make_current(number);
        store_->end_canary();
        publish();
        const std::string line = canary_outcome(number, how, figures, elapsed, why);
        command_workers(
            {promote ? control_command::kind::promote : control_command::kind::rollback},
            [this, promote, number, line, figures, began, answer](command_outcome_set o) {
                if (promote) {
                    generation_ = number;
                    cfg_ = std::move(canary_->config);
                    read_certificates();
                    rewatch();
                    commit_shared_state();
                    start_trial();  // crashes soon after count towards the crash-loop rollback
                }
                canary_.reset();
                store_->forget_all_but({good_, generation_});
                for (const auto& f : o.failures)
                    log::warn("master: canary generation " + std::to_string(number) + ": " + f);
                // A worker that could not promote it (it had not joined it) would serve
                // another generation than the others: every worker reloads the current
                // copy, which is the canary's now.
                if (promote && !o.failures.empty()) reload_pending_ = true;
                last_canary_->decided(promote, figures, line, unix_ms());
                canary_state_ = last_canary_->state;
                log_canary_verdict(line, promote, number, generation_,
                                   "master: ", " in every worker");
                command_outcome(true, line, began, false, answer);
                notify_.status(serving_status());
            });
    }

    // SIGHUP or --watch: a reload now, or one more after the one running.
    void request_reload() {
        if (reloading_ || commanding_) {
            reload_pending_ = true;
        } else {
            reload();
        }
    }

    // --watch: the master watches the files the user edits (the config file and the plugin
    // files it names, not the master's copies of them), and a change reloads every worker
    // as SIGHUP does. Workers never watch.
    void watch_files() {
        watch_.emplace(io_, milliseconds{300}, [this] {
            log::info("--watch: a watched file changed: reloading every worker");
            request_reload();
        });
        rewatch();
    }

    // The master builds no TLS context (its workers do): for /status and /metrics it reads
    // each TLS listener's certificate file when a configuration is committed. The workers
    // read the same file at the same reload, and refused it already if it were unusable.
    void read_certificates() {
        certificates_.clear();
        for (const auto& l : cfg_.listeners) {
            if (!l.tls) continue;
            try {
                certificates_[l.name] = certificate_facts::read(l.tls->certificate);
            } catch (const std::exception& e) {
                log::warn(
                    "listener " + l.name + ": /status cannot show its certificate: " + e.what(),
                    {log::tag("listener", l.name)});
            }
        }
    }

    // After each reload: the set of plugin files may have changed.
    void rewatch() {
        if (!watch_) return;
        std::vector<std::filesystem::path> files{options_.config_file};
        for (const auto& p : cfg_.plugins) files.push_back(p.file);
        append_tls_files(cfg_, files);
        watch_->watch(std::move(files));
    }

    // Checks the new configuration, then has every worker reload it in place (each the
    // all-or-nothing, zero-failed-requests reload of a single plugd) and combines their
    // outcomes into one.
    void reload() {
        ++attempt_;
        began_ = unix_ms();
        if (stopping_) {
            record(false, "shutting down", began_);
            return;
        }
        if (canary_) {
            // Refused rather than replacing the canary: see server.cpp's run_reload.
            const std::string why = canary_busy();
            log::error("reload refused: " + why + "; every worker still serves generation " +
                       std::to_string(generation_) + ", unchanged");
            record(false, why, began_);
            return;
        }
        notify_.reloading("reloading; every worker serves generation " +
                          std::to_string(generation_) + " meanwhile");
        try {
            server_config next =
                options_.config_file.empty()
                    ? default_config(options_.bundled_plugin_dir)
                    : load_config(options_.config_file, options_.bundled_plugin_dir);
            // Refused here, before a number is taken or a worker signalled: every worker
            // would refuse it the same way.
            check_no_restart_needed(cfg_, next);
            make_shared_state(next);
            // A new number for every reload the workers are asked to make, taken only once
            // its copy is kept: never one a worker may have served already.
            const std::uint64_t number = last_number_ + 1;
            store_->keep(number, next);
            last_number_ = number;
            pending_ = number;
            store_->make_current(number);
            next_ = std::move(next);
        } catch (const std::exception& e) {
            log::error(std::string{"reload failed: "} + e.what() +
                       "; every worker still serves generation " + std::to_string(generation_) +
                       ", unchanged");
            record(false, e.what(), began_);
            tell_systemd_reload_failed(e.what());
            return;
        }
        signal_workers();
    }

    // Every live worker reloads the current copy in place; the outcomes come back through
    // their status files.
    void signal_workers() {
        reloading_ = true;
        publish();
        reload_deadline_ = clock::now() + std::chrono::seconds{60};
        for (unsigned i = 0; i < workers_.size(); ++i) {
            worker& w = *workers_[i];
            const auto before = read_reload_status(status_file(i));
            w.attempt_before_reload = before ? before->attempt : 0;
            w.signalled = w.pid;
            if (w.pid > 0) ::kill(w.pid, SIGHUP);
        }
        poll_reload();
    }

    void poll_reload() {
        reload_poll_.expires_after(milliseconds{10});
        reload_poll_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) note_reload_progress();
        });
    }

    // Every worker has recorded an outcome newer than the signal (or died, or the time is
    // up): one combined outcome.
    void note_reload_progress() {
        if (!reloading_) return;  // a poll that was already due when the reload ended
        std::vector<std::string> failures;
        std::string summary;
        bool waiting = false;
        bool replaced = false;  // a worker started since the signal: on the new copy
        for (unsigned i = 0; i < workers_.size(); ++i) {
            const worker& w = *workers_[i];
            if (w.pid <= 0) continue;  // it starts on the current copy when it starts
            if (w.pid != w.signalled) {
                replaced = true;
                continue;
            }
            const auto s = read_reload_status(status_file(i));
            if (!s || s->attempt <= w.attempt_before_reload) {
                waiting = true;
                if (clock::now() >= reload_deadline_)
                    failures.push_back("worker " + std::to_string(i) +
                                       " did not report an outcome within 60 s");
            } else if (!s->ok) {
                failures.push_back("worker " + std::to_string(i) + " (pid " +
                                   std::to_string(w.pid) + "): " + s->message);
            } else if (summary.empty()) {
                summary = s->message;
            }
        }
        if (waiting && clock::now() < reload_deadline_) {
            poll_reload();
            return;
        }
        reload_poll_.cancel();
        reloading_ = false;
        if (std::exchange(rolling_back_, false)) {
            generation_ = std::exchange(pending_, 0);
            log::info("master: rollback done: every worker serves generation " +
                      std::to_string(generation_) + " with generation " +
                      std::to_string(revert_source_) + "'s configuration and plugins" +
                      (failures.empty() ? "" : " (" + failures.front() + ")"));
            store_->forget_all_but({good_, generation_});
            // The attempt's outcome stays as it was (the next reload reports the rollback);
            // the generation serving is this one.
            record(last_ok_, last_message_, began_);
            notify_.status(serving_status());
            run_next();
            return;
        }
        if (failures.empty()) {
            generation_ = std::exchange(pending_, 0);
            // Listeners the new configuration removed: no worker accepts there any more.
            for (auto it = sockets_.begin(); it != sockets_.end();) {
                const auto* kept = find_listener(*next_, it->first);
                if (it->second.from_systemd) {
                    ++it;  // kept for a reload that adds the listener back (passed_socket)
                } else if (!kept || kept->address != it->second.address ||
                           (kept->port != 0 && kept->port != it->second.port)) {
                    ::close(it->second.fd);
                    it = sockets_.erase(it);
                } else {
                    ++it;
                }
            }
            cfg_ = std::move(*next_);
            read_certificates();
            rewatch();
            commit_shared_state();
            store_->forget_all_but({good_, generation_});
            // The new generation is on trial: crashes within the window roll it back. (A
            // rollback decided during this reload still goes back to good_.)
            start_trial();
            std::string line = "reload: all " + std::to_string(workers_.size()) +
                               " workers on generation " + std::to_string(generation_) + "; " +
                               (summary.empty() ? "every worker was replaced during the reload "
                                                  "and started on it"
                                                : "worker 0: " + summary);
            log::info(line);
            if (!rollback_note_.empty())
                line = std::exchange(rollback_note_, {}) + "; then " + line;
            record(true, line, began_);
            notify_.reloaded(serving_status());
        } else {
            const std::uint64_t refused = std::exchange(pending_, 0);
            std::string why;
            for (const auto& f : failures) why += (why.empty() ? "" : "; ") + f;
            log::error("reload failed: " + why + " (generation " + std::to_string(refused) +
                       " is not used again)");
            if (!rollback_note_.empty()) why = std::exchange(rollback_note_, {}) + "; then " + why;
            record(false, why, began_);
            tell_systemd_reload_failed(why);
            next_.reset();
            if (!summary.empty() || replaced) {
                // Some workers took it (or started on it): all must serve one generation,
                // the previous one's files, under a new number.
                log::warn(
                    "master: the workers that took the new generation go back to the "
                    "previous one, so that every worker serves the same");
                revert_to(generation_);
                return;
            }
            store_->make_current(generation_);  // what serves; respawned workers read it
            store_->forget_all_but({good_, generation_});
        }
        next_.reset();
        run_next();
    }

    // ctx.shared() with workers: one shared memory segment per plugin instance, made here
    // and mapped by every worker (host/shared_state.hpp), so the master alone reads and
    // writes the state files.

    // Makes the segment of each instance of `c` that has none yet, from its state_file,
    // before any worker is told to serve `c`. Throws config_error naming the instance.
    void make_shared_state(const server_config& c) {
        if (!c.user.empty()) {
            // Workers that run as `user` must be able to map them.
            if (const passwd* pw = ::getpwnam(c.user.c_str()))
                shared_.hand_segments_to(pw->pw_uid, pw->pw_gid);
        }
        for (const auto& spec : c.plugins) {
            try {
                // The master saves it at stop (as root, with "user"): refused now if it
                // could not, not found out then.
                if (!spec.state_file.empty()) check_state_file(spec.state_file, spec.name);
                shared_.map_for(spec.name, spec.shared_bytes, spec.state_file);
            } catch (const std::exception& e) {
                throw config_error("plugin " + spec.name + ": its shared state: " + e.what());
            }
        }
    }

    // Every worker serves cfg_: its budgets and state files count; an instance it no longer
    // has loses its segment (workers still draining it keep their mapping until done).
    void commit_shared_state() {
        std::set<std::string> names;
        for (const auto& spec : cfg_.plugins) {
            names.insert(spec.name);
            shared_.configure(spec.name, spec.shared_bytes, spec.state_file);
        }
        shared_.keep_only(names);
    }

    // At stop, once every worker has exited: the one writer of each state file.
    bool save_shared_state() {
        const bool saved = shared_.save_all();
        shared_ = shared_state{shared_state::placement::segments_made_here};  // unlinks them
        return saved;
    }

    static const listener_spec* find_listener(const server_config& c, const std::string& name) {
        for (const auto& l : c.listeners) {
            if (l.name == name) return &l;
        }
        return nullptr;
    }

    void start_trial() {
        on_trial_ = true;
        trial_since_ = clock::now();
        crashes_.clear();
        trial_timer_.expires_after(cfg_.rollback_window);
        trial_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || !on_trial_) return;
            // It ran the whole window without a crash loop: it is the one to go back to.
            // (generation_: the one on trial, or a copy of it a failed reload went back to.)
            on_trial_ = false;
            good_ = generation_;
            if (cfg_.rollback_after_crashes > 0)
                log::info("master: generation " + std::to_string(good_) + " ran " +
                          std::to_string(cfg_.rollback_window.count()) +
                          " ms (rollback_window_ms) without reaching rollback_after_crashes: "
                          "a rollback now returns to it");
            // A reload under way still needs its own copy.
            store_->forget_all_but({good_, pending_});
        });
    }

    void stop(int signo) {
        if (stopping_) {
            // A second signal: tell the workers again (each skips the rest of its drain).
            for (auto& w : workers_) {
                if (w->pid > 0) ::kill(w->pid, SIGTERM);
            }
            return;
        }
        stopping_ = true;
        draining_ = cfg_.limits.shutdown_delay.count() > 0;
        publish();
        if (draining_) {
            // The workers drain for shutdown_delay_ms (serving, /healthz 503), then stop.
            drain_end_.expires_after(cfg_.limits.shutdown_delay);
            drain_end_.async_wait([this](const boost::system::error_code& ec) {
                if (ec) return;
                draining_ = false;
                publish();
            });
        }
        if (watch_) watch_->close();
        canary_tick_.cancel();
        if (canary_)
            log::info("master: stopping while canary generation " +
                      std::to_string(canary_->generation) +
                      " runs: neither promoted nor rolled back (a start serves what server.json "
                      "names)");
        notify_.stopping("stopping: every worker drains; generation " +
                         std::to_string(generation_));
        log::info(std::string{"master: received "} + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                  ": stopping every worker (each drains as a single plugd does)");
        bool any = false;
        for (auto& w : workers_) {
            w->respawn.cancel();
            if (w->pid > 0) {
                ::kill(w->pid, SIGTERM);
                any = true;
            }
        }
        if (!any) {
            finish();
            return;
        }
        const auto limit =
            cfg_.limits.shutdown_delay + cfg_.limits.shutdown_timeout + std::chrono::seconds{5};
        stop_deadline_.expires_after(limit);
        stop_deadline_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            log::warn("master: workers still running past their shutdown limits: killing them");
            for (auto& w : workers_) {
                if (w->pid > 0) ::kill(w->pid, SIGKILL);
            }
        });
    }

    void finish() {
        done_ = true;
        drain_end_.cancel();
        // A POST /reload still waiting gets its answer: no reload runs any more.
        for (auto& w : std::exchange(reload_waiters_, {}))
            w.answer({503, R"({"ok":false,"error":"shutting down"})"
                           "\n"});
        if (admin_) admin_->close();
        watchdog_.stop();
        serving_poll_.cancel();
        trial_timer_.cancel();
        stop_deadline_.cancel();
        reload_poll_.cancel();
        command_poll_.cancel();
        canary_tick_.cancel();
        for (auto& [command, answer] : std::exchange(queued_commands_, {})) {
            if (answer)
                answer({503, R"({"ok":false,"error":"shutting down"})"
                             "\n"});
        }
        signals_.cancel();
    }

    // The sockets systemd passed, then a bound one for every other listener.
    void open_listeners() {
        const auto activated = take_activated_sockets(cfg_);
        for (const auto& l : cfg_.listeners) {
            const auto passed = activated.find(l.name);
            const int fd = passed != activated.end() ? passed->second : bind_shared(cfg_, l);
            sockets_[l.name] = {fd, l.address, bound_port(fd), passed != activated.end()};
            log::info("listener " + l.name + ": listening on " + bound_address(fd) + ":" +
                      std::to_string(bound_port(fd)) + " (framing " +
                      std::string{to_string(l.framing)} + ", " + dispatch_summary(l) +
                      "), shared by " + std::to_string(cfg_.workers) + " worker processes" +
                      (passed != activated.end()
                           ? "; on the socket systemd passed (descriptor " + std::to_string(fd) +
                                 "), not bound by plugd (the .socket unit's ListenStream= "
                                 "decides its address)"
                           : ""));
        }
    }

    // systemd hears READY=1 once every worker serves generation 1: each has recorded its
    // start in its status file (which spawn() removes first).
    void poll_workers_serving() {
        serving_poll_.expires_after(milliseconds{10});
        serving_poll_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            for (unsigned i = 0; i < workers_.size(); ++i) {
                const auto s = read_reload_status(status_file(i));
                if (workers_[i]->pid <= 0 || !s) {
                    poll_workers_serving();
                    return;
                }
            }
            notify_.ready(serving_status());
        });
    }

    std::string serving_status() const {
        return "serving generation " + std::to_string(generation_) + " with " +
               std::to_string(workers_.size()) + " workers";
    }

    // A failed reload leaves the workers serving what they served: systemd hears READY=1.
    void tell_systemd_reload_failed(const std::string& why) {
        notify_.reloaded("reload failed (" + why + "); " + serving_status());
    }

    // What `plugd -s` reads: the master's combined outcomes.
    void record(bool ok, std::string message, std::int64_t began) {
        last_ok_ = ok;
        last_message_ = message;
        if (attempt_ > counted_attempt_) {  // a rollback records the same attempt again
            counted_attempt_ = attempt_;
            ok ? ++reloads_ok_ : ++reloads_failed_;
        }
        answer_reload_waiters(ok, message, began);
        write_reload_status(
            reload_status_file(pid_file_->path()),
            {attempt_, ok, generation_, std::move(message), began, options_.config_file,
             canary_state_, canary_generation_, canary_deadline_unix_ms_});
        publish();
    }

    // The admin endpoint (server.json "admin"), served by the master: see master_admin.
    void start_admin() {
        if (!cfg_.admin) return;
        admin_backend_.emplace(io_, *board_, [this](control_command command, auto answer) {
            if (command.what != control_command::kind::reload || command.canary_percent != 0) {
                request_command(command, std::move(answer));
                return;
            }
            // Like SIGHUP: joins a reload queued already, or queues one behind the one
            // running; answered with the outcome of the attempt it starts or joins.
            reload_waiters_.push_back({attempt_ + 1, std::move(answer)});
            if (reloading_ || commanding_) {
                reload_pending_ = true;
            } else {
                reload();
            }
        });
        admin_.emplace(cfg_, *admin_backend_, facts());
        log::info("admin endpoint: listening on " + admin_->where() +
                  " (GET /healthz, /livez, /status, /metrics; POST /reload, /promote, "
                  "/rollback), served by the "
                  "master for all " +
                  std::to_string(cfg_.workers) + " workers");
    }

    void answer_reload_waiters(bool ok, const std::string& message, std::int64_t began) {
        std::vector<reload_waiter> still;
        for (auto& w : std::exchange(reload_waiters_, {})) {
            if (w.attempt > attempt_) {
                still.push_back(std::move(w));
                continue;
            }
            nlohmann::json body{
                {"ok", ok}, {"generation", generation_}, {"duration_ms", unix_ms() - began}};
            body[ok ? "message" : "error"] = message;
            w.answer({ok ? 200 : 409, body.dump() + "\n"});
        }
        reload_waiters_ = std::move(still);
    }

    std::shared_ptr<const control_facts> facts() const {
        auto f = std::make_shared<control_facts>();
        f->generation = generation_;
        f->started_unix_ms = started_unix_ms_;
        f->state = !stopping_ ? "serving" : draining_ ? "draining" : "stopping";
        f->reloads_ok = reloads_ok_;
        f->reloads_failed = reloads_failed_;
        f->reloading = reloading_;
        f->certificates = certificates_;
        for (const auto& l : cfg_.listeners) {
            listener_spec bound = l;
            if (const auto s = sockets_.find(l.name); s != sockets_.end())
                bound.port = s->second.port;
            f->listeners.push_back(std::move(bound));
        }
        for (unsigned i = 0; i < workers_.size(); ++i) {
            const worker& w = *workers_[i];
            f->workers.push_back({i, w.pid > 0 ? static_cast<long>(w.pid) : 0, w.started_unix_ms,
                                  w.down_since_unix_ms, w.restarts});
        }
        f->canary = last_canary_;
        return f;
    }

    // Hands the admin thread a fresh copy after anything it reports changed.
    void publish() {
        if (admin_) admin_->publish(facts());
    }

    struct reload_waiter {
        std::uint64_t attempt;  ///< answered once this attempt has its outcome
        std::function<void(admin_backend::answer)> answer;
    };

    // The admin endpoint goes last: its thread is stopped first (after io_.run()), but a
    // POST /reload of it may wait in io_ when io_ is destroyed, which destroys the waiting
    // admin coroutine, whose sockets belong to the admin event loop.
    std::optional<admin_endpoint> admin_;
    std::optional<worker_board> board_;
    std::optional<master_admin> admin_backend_;
    std::vector<reload_waiter> reload_waiters_;
    std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
    std::map<std::string, certificate_facts> certificates_;  ///< see read_certificates()
    std::uint64_t counted_attempt_ = 0;
    bool draining_ = false;  ///< stopping, and the workers' shutdown_delay_ms runs
    std::int64_t started_unix_ms_ = unix_ms();
    server_config cfg_;
    server_options options_;
    std::optional<pid_file> pid_file_;
    std::map<std::string, shared_socket> sockets_;
    shared_state shared_{shared_state::placement::segments_made_here};
    asio::io_context io_{1};
    control_signals signals_{io_};
    std::vector<std::unique_ptr<worker>> workers_;
    std::uint64_t generation_ = 1;  ///< the generation every worker serves
    std::uint64_t attempt_ = 0;
    std::uint64_t restarts_ = 0;
    std::int64_t began_ = 0;
    bool last_ok_ = true;  ///< the last outcome recorded, for a record after rollback
    std::string last_message_;
    bool reloading_ = false;
    bool reload_pending_ = false;
    bool stopping_ = false;
    bool done_ = false;
    std::optional<server_config> next_;
    // A canary (see start_canary): starting (the workers start it), running (the master
    // judges it), ending (the workers promote or roll it back).
    struct canary_run {
        std::uint64_t generation = 0;
        unsigned percent = 0;
        server_config config;  ///< what it loaded: cfg_ once it is promoted
        clock::time_point started;
        std::int64_t began_unix_ms = 0;  ///< when its start was asked for
        enum class phase { starting, running, ending } step = phase::starting;
    };
    std::optional<canary_run> canary_;
    std::optional<canary_facts> last_canary_;  ///< running, or the last one decided
    // What the status file says of the last canary (reload_status).
    std::string canary_state_;
    std::uint64_t canary_generation_ = 0;
    std::int64_t canary_deadline_unix_ms_ = 0;
    asio::steady_timer canary_tick_{io_};
    /// A command every worker carries out now (command_workers): what to do with its outcome.
    std::function<void(command_outcome_set)> commanding_;
    clock::time_point command_deadline_;
    asio::steady_timer command_poll_{io_};
    /// Canary commands asked for while a reload or another command ran, in order.
    std::deque<std::pair<control_command, reply>> queued_commands_;
    std::optional<generation_store> store_;
    std::optional<user_account> worker_user_;  ///< "user", whom the workers run as
    std::optional<worker_folder> folder_;      ///< where the workers write
    std::optional<file_watch> watch_;          ///< --watch
    // Generation numbers are the master's: one per reload the workers are asked to make
    // (a rollback included), never given twice; a kept copy is named by its number.
    std::uint64_t last_number_ = 1;  ///< the highest number given so far
    std::uint64_t pending_ = 0;      ///< what a reload (or rollback) in progress installs
    /// The last generation that ran a whole rollback window without reaching the crash
    /// limit: the only kind a rollback goes back to (0: none yet).
    std::uint64_t good_ = 0;
    bool on_trial_ = false;  ///< crashes now count towards a rollback
    bool rolling_back_ = false;
    bool rollback_pending_ = false;
    std::uint64_t revert_source_ = 0;  ///< whose files the reload back (rolling_back_) runs
    clock::time_point trial_since_;
    std::vector<std::string> crashes_;  ///< plugins the workers crashed in, this trial
    std::string rollback_note_;         ///< for the next reload's outcome
    asio::steady_timer trial_timer_{io_};
    clock::time_point reload_deadline_;
    asio::steady_timer reload_poll_{io_};
    asio::steady_timer stop_deadline_{io_};
    asio::steady_timer drain_end_{io_};
    asio::steady_timer serving_poll_{io_};  ///< until every worker first serves
    // Constructed with the supervisor, before any worker starts (it unsets variables).
    systemd_notify notify_;
    // The master runs no plugin code: its loop coming round is its liveness.
    watchdog_pings watchdog_{io_, notify_, [] { return true; }};
};

}  // namespace

int supervise(server_config cfg, const server_options& options) {
    block_control_signals();
    supervisor s{std::move(cfg), options};
    return s.run();
}

}  // namespace plugd
