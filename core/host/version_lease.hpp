// version_lease: keeps one plugin version loaded while work of it runs anywhere.
#pragma once

#include <functional>
#include <memory>

namespace plugd {

class plugin_version;

/// A claim on a plugin version by work running outside the request path: an offloaded
/// job, a background task. The version is unloaded only once no shard routes to it and no
/// lease remains, so plugin code (a job's lambda, a task's coroutine frame) is never
/// unmapped while it can still run. (Requests are counted per shard instead, in one plain
/// integer, which keeps the request path free of shared atomic writes; each shard holds
/// one reference for all its requests on the version.)
///
/// Releasing runs `released` (the server's: it makes the control thread look for versions
/// to unload). The version's owner (the deployment on the control thread; in the test
/// harness, the thread driving it) holds its own reference until it is the only one left,
/// so a lease is never the last one and a version is always destroyed on the owner's
/// thread (see plugin_version).
/// Movable, not copyable; thread-safe to release from any thread.
class version_lease {
  public:
    version_lease() = default;
    version_lease(std::shared_ptr<plugin_version> version,
                  const std::function<void()>& released) noexcept
        : version_{std::move(version)}, released_{&released} {}
    version_lease(version_lease&& other) noexcept
        : version_{std::move(other.version_)}, released_{other.released_} {}
    version_lease& operator=(version_lease&& other) noexcept {
        if (this != &other) {
            release();
            version_ = std::move(other.version_);
            released_ = other.released_;
        }
        return *this;
    }
    ~version_lease() { release(); }

    void release() noexcept {
        if (!version_) return;
        version_.reset();
        (*released_)();
    }
    explicit operator bool() const noexcept { return version_ != nullptr; }

  private:
    std::shared_ptr<plugin_version> version_;
    const std::function<void()>* released_ = nullptr;
};

}  // namespace plugd
