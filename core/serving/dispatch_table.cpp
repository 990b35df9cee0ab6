// dispatch_table: the process's in-flight counters of capped instances.
#include "serving/dispatch_table.hpp"

#include <map>
#include <mutex>

namespace plugd {

std::atomic<std::uint64_t>& instance_in_flight(const std::string& name) {
    // Looked up when shards apply a reload, never per request.
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<std::atomic<std::uint64_t>>> counters;
    std::lock_guard lock{mutex};
    auto& counter = counters[name];
    if (!counter) counter = std::make_unique<std::atomic<std::uint64_t>>(0);
    return *counter;
}

}  // namespace plugd
