// plugin_context: the SDK's context, each call handed to its facility in core/host/.
#include "plugins/plugin_context.hpp"

#include "faults/running_code.hpp"
#include "host/host.hpp"
#include "host/offload.hpp"
#include "host/task_group.hpp"
#include "log.hpp"
#include "plugins/plugin_version.hpp"

namespace plugd {
namespace {

// The body of context::every: core code, so the timer between calls is the core's. A
// failed call is logged and the schedule goes on; once cancelled, the next sleep_for
// throws and ends it.
task<void> repeat(host& facilities, std::chrono::milliseconds interval,
                  std::function<task<void>()> work, std::string owner, std::string name) {
    for (;;) {
        co_await facilities.sleep_for(interval);
        co_await logging_failures(work(), owner, "periodic task " + name);
    }
}

}  // namespace

void plugin_context::log(log_level level, std::string_view message) const noexcept {
    try {
        log::write(level, "plugin " + name_ + ": " + std::string{message});
    } catch (...) {
        // Out of memory while building the line: dropping it is the only safe choice.
    }
}

task<void> plugin_context::sleep_for(std::chrono::milliseconds duration) const {
    return owner_.host_of().sleep_for(duration);
}

shared_map& plugin_context::shared() const noexcept {
    return owner_.shared_state();
}

void plugin_context::spawn(task<void> work, std::string_view name) const {
    auto lease = owner_.lease("spawn");  // first: refuses a call from the constructor
    owner_.tasks().spawn(owner_.host_of().task_executor(), std::move(work), std::string{name},
                         std::move(lease));
}

void plugin_context::every(std::chrono::milliseconds interval, std::function<task<void>()> work,
                           std::string_view name) const {
    if (interval.count() <= 0) {
        throw std::invalid_argument("every(): the interval must be above zero");
    }
    spawn(repeat(owner_.host_of(), interval, std::move(work), owner_.describe(), std::string{name}),
          name);
}

task<std::unique_ptr<stream>> plugin_context::connect(std::string_view host,
                                                      std::uint16_t port) const {
    return owner_.outbound().connect(std::string{host}, port);
}

task<std::unique_ptr<stream>> plugin_context::connect(std::string_view host, std::uint16_t port,
                                                      const tls_options& tls) const {
    // Copied into the coroutine: the caller's options may be a temporary.
    return owner_.outbound().connect(std::string{host}, port, tls);
}

plugd::topics& plugin_context::topics() const noexcept {
    // The host's, not the version's: subscriptions outlive every version.
    return owner_.host_of().topics();
}

task<void> plugin_context::run_offloaded(std::function<void()> job) const {
    // On the offload thread, a crash report names this plugin (the lease keeps the name
    // alive while the job runs). The stall monitor watches only the shards' threads.
    const running_code runs{owner_.spec().name.c_str(), owner_.generation(), nullptr, nullptr};
    auto named = [job = std::move(job), runs] {
        running_scope scope{runs};
        job();
    };
    return plugd::run_offloaded(owner_.host_of().offload(), std::move(named),
                                owner_.lease("offload"), name_);
}

}  // namespace plugd
