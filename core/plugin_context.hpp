// plugin_context: the core's implementation of plugd::context for one plugin instance.
#pragma once

#include <string>

#include <plugd/context.hpp>

namespace plugd {

/// Implements every facility a plugin may use. Its code, and so every Asio service it
/// creates, lives in the core: unloading the plugin leaves nothing of the plugin inside the
/// event loop (see docs/architecture.md, "Why timers are host code").
class plugin_context final : public context {
  public:
    plugin_context(std::string instance_name, nlohmann::json config)
        : name_{std::move(instance_name)}, config_(std::move(config)) {}

    const nlohmann::json& config() const noexcept override { return config_; }
    std::string_view instance_name() const noexcept override { return name_; }
    void log(log_level level, std::string_view message) const noexcept override;
    task<void> sleep_for(std::chrono::milliseconds duration) const override;

  private:
    std::string name_;
    nlohmann::json config_;
};

}  // namespace plugd
