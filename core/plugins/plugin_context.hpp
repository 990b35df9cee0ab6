// plugin_context: the core's implementation of plugd::context for one plugin version.
#pragma once

#include <string>

#include <plugd/context.hpp>

namespace plugd {

class plugin_version;

/// Implements every facility a plugin may use, by handing each call to its facility in
/// core/host/. Its code, and so every Asio service and thread it uses, lives in the core:
/// unloading the plugin leaves nothing of the plugin inside an event loop or a thread (see
/// docs/architecture.md, "Why timers are host code"). Work it starts outside a request
/// takes a lease on `owner`, which keeps the version loaded until that work has ended.
class plugin_context final : public context {
  public:
    plugin_context(std::string instance_name, nlohmann::json config, plugin_version& owner)
        : name_{std::move(instance_name)}, config_(std::move(config)), owner_{owner} {}

    const nlohmann::json& config() const noexcept override { return config_; }
    std::string_view instance_name() const noexcept override { return name_; }
    void log(log_level level, std::string_view message) const noexcept override;
    task<void> sleep_for(std::chrono::milliseconds duration) const override;
    shared_map& shared() const noexcept override;
    void spawn(task<void> work, std::string_view name) const override;
    void every(std::chrono::milliseconds interval, std::function<task<void>()> work,
               std::string_view name) const override;
    task<std::unique_ptr<stream>> connect(std::string_view host, std::uint16_t port) const override;
    task<std::unique_ptr<stream>> connect(std::string_view host, std::uint16_t port,
                                          const tls_options& tls) const override;
    plugd::topics& topics() const noexcept override;

  protected:
    task<void> run_offloaded(std::function<void()> job) const override;

  private:
    std::string name_;
    nlohmann::json config_;
    plugin_version& owner_;
};

}  // namespace plugd
