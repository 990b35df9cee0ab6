// traffic_ledger: records appended to one mapped region; a seqlocked gauges document.
#include "serving/traffic_ledger.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <system_error>

#include "log.hpp"

namespace plugd {
namespace {

// Virtual size: untouched pages cost nothing. A record is about 100 (listener) or 250
// (listener with plugin) bytes: thousands of them, for every shard, listener, instance and
// reload a process sees.
constexpr std::size_t region_bytes = std::size_t{1} << 20;
constexpr std::size_t gauge_capacity = 48 * 1024;
constexpr std::uint64_t ledger_magic = 0x706c7567642d6c32;  // "plugd-l2"

enum record_kind : std::uint32_t {
    none = 0,
    listener_kind = 1,
    requests_kind = 2,
    topics_kind = 3,
    canary_kind = 4
};

// A counter another process may read while its shard writes it: read whole, never torn.
std::uint64_t read_whole(const std::uint64_t& v) noexcept {
    return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

template <std::size_t N>
void read_whole(std::array<std::uint64_t, N>& to, const std::array<std::uint64_t, N>& from) {
    for (std::size_t i = 0; i < N; ++i) to[i] = read_whole(from[i]);
}

std::mutex overflow_mutex;  // the rare path only: a full region

}  // namespace

struct ledger_header {
    std::uint64_t magic;
    std::atomic<std::uint32_t> used;            ///< bytes of records reserved so far
    std::atomic<std::uint32_t> gauge_sequence;  ///< odd while the document is rewritten
    std::atomic<std::uint32_t> gauge_length;
    std::atomic<bool> warned_full;
    char gauges[gauge_capacity];
};

struct alignas(8) ledger_record {
    std::atomic<std::uint32_t> kind;  ///< stored last: the record is whole once it is set
    std::uint32_t bytes;              ///< the whole record, aligned to 8
    std::uint32_t shard;
    std::uint16_t listener_length, route_length, plugin_length, generation_length;
    // Then the stats (listener_stats, request_stats, topic_stats or canary_stats), then the
    // four names.
    unsigned char* stats() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
};

namespace {
constexpr std::size_t records_offset = (sizeof(ledger_header) + 63) & ~std::size_t{63};
}  // namespace

traffic_ledger::traffic_ledger() {
    void* p =
        ::mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    base_ = static_cast<unsigned char*>(p);
    head().magic = ledger_magic;
}

traffic_ledger::traffic_ledger(int fd) : fd_{fd} {
    void* p = ::mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        throw std::system_error(errno, std::generic_category(), "mmap of the traffic ledger");
    base_ = static_cast<unsigned char*>(p);
    if (head().magic == 0) head().magic = ledger_magic;
}

traffic_ledger::~traffic_ledger() {
    ::munmap(base_, region_bytes);
}

int traffic_ledger::create_file() {
    const int fd = ::memfd_create("plugd-traffic", MFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
    if (::ftruncate(fd, region_bytes) != 0) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "ftruncate of the traffic ledger");
    }
    return fd;
}

ledger_header& traffic_ledger::head() const noexcept {
    return *reinterpret_cast<ledger_header*>(base_);
}

ledger_record* traffic_ledger::append(unsigned shard, std::string_view listener,
                                      std::string_view route, std::string_view plugin,
                                      std::string_view generation, std::size_t stats_bytes) {
    const std::size_t bytes = (sizeof(ledger_record) + stats_bytes + listener.size() +
                               route.size() + plugin.size() + generation.size() + 7) &
                              ~std::size_t{7};
    const std::uint32_t at = head().used.fetch_add(static_cast<std::uint32_t>(bytes));
    if (records_offset + at + bytes > region_bytes || listener.size() > 0xffff ||
        route.size() > 0xffff || plugin.size() > 0xffff || generation.size() > 0xffff) {
        if (!head().warned_full.exchange(true))
            log::warn(
                "traffic ledger full: counters of listeners and plugin instances added "
                "from now on are kept by this process only (a supervising master's "
                "/metrics does not see them); restart to start a new ledger");
        return nullptr;
    }
    auto* r = new (base_ + records_offset + at) ledger_record{};
    r->bytes = static_cast<std::uint32_t>(bytes);
    r->shard = shard;
    r->listener_length = static_cast<std::uint16_t>(listener.size());
    r->route_length = static_cast<std::uint16_t>(route.size());
    r->plugin_length = static_cast<std::uint16_t>(plugin.size());
    r->generation_length = static_cast<std::uint16_t>(generation.size());
    unsigned char* names = r->stats() + stats_bytes;
    // (An empty name's data() may be null, which memcpy must not be given.)
    for (const std::string_view name : {listener, route, plugin, generation}) {
        if (!name.empty()) std::memcpy(names, name.data(), name.size());
        names += name.size();
    }
    return r;
}

listener_stats* traffic_ledger::listener(unsigned shard, std::string_view name) {
    ledger_record* r = append(shard, name, {}, {}, {}, sizeof(listener_stats));
    if (!r) {
        std::lock_guard lock{overflow_mutex};
        return &overflow_listeners_.emplace_back();
    }
    auto* stats = new (r->stats()) listener_stats{};
    r->kind.store(listener_kind, std::memory_order_release);
    return stats;
}

request_stats* traffic_ledger::requests(unsigned shard, std::string_view listener,
                                        std::string_view route, std::string_view plugin,
                                        std::string_view generation) {
    ledger_record* r = append(shard, listener, route, plugin, generation, sizeof(request_stats));
    if (!r) {
        std::lock_guard lock{overflow_mutex};
        return &overflow_requests_.emplace_back();
    }
    auto* stats = new (r->stats()) request_stats{};
    r->kind.store(requests_kind, std::memory_order_release);
    return stats;
}

canary_stats* traffic_ledger::canary(unsigned shard, std::string_view instance) {
    ledger_record* r = append(shard, {}, {}, instance, {}, sizeof(canary_stats));
    if (!r) {
        std::lock_guard lock{overflow_mutex};
        return &overflow_canary_.emplace_back();
    }
    auto* stats = new (r->stats()) canary_stats{};
    r->kind.store(canary_kind, std::memory_order_release);
    return stats;
}

topic_stats* traffic_ledger::topics(unsigned shard) {
    ledger_record* r = append(shard, {}, {}, {}, {}, sizeof(topic_stats));
    if (!r) {
        std::lock_guard lock{overflow_mutex};
        return &overflow_topics_.emplace_back();
    }
    auto* stats = new (r->stats()) topic_stats{};
    r->kind.store(topics_kind, std::memory_order_release);
    return stats;
}

void traffic_ledger::add_counters(shard_snapshot& into) const {
    const std::size_t used = std::min<std::size_t>(head().used.load(std::memory_order_acquire),
                                                   region_bytes - records_offset);
    for (std::size_t at = 0; at < used;) {
        auto* r = reinterpret_cast<ledger_record*>(base_ + records_offset + at);
        const std::uint32_t kind = r->kind.load(std::memory_order_acquire);
        // Reserved and not yet whole: its size is not known yet, nor anything after it; it
        // is being added right now (a reload), and the next reading sees it.
        if (kind == none || r->bytes == 0) break;
        const std::size_t stats_bytes = kind == listener_kind ? sizeof(listener_stats)
                                        : kind == topics_kind ? sizeof(topic_stats)
                                        : kind == canary_kind ? sizeof(canary_stats)
                                                              : sizeof(request_stats);
        const char* names = reinterpret_cast<const char*>(r->stats() + stats_bytes);
        const std::string listener{names, r->listener_length};
        if (kind == listener_kind) {
            const auto& from = *reinterpret_cast<const listener_stats*>(r->stats());
            listener_stats s;
            s.accepted = read_whole(from.accepted);
            s.refused = read_whole(from.refused);
            s.bad_requests = read_whole(from.bad_requests);
            s.slow_requests = read_whole(from.slow_requests);
            s.idle_timeouts = read_whole(from.idle_timeouts);
            s.not_found = read_whole(from.not_found);
            s.method_not_allowed = read_whole(from.method_not_allowed);
            s.bytes_in = read_whole(from.bytes_in);
            s.bytes_out = read_whole(from.bytes_out);
            s.tls_full = read_whole(from.tls_full);
            s.tls_resumed = read_whole(from.tls_resumed);
            s.tls_failed = read_whole(from.tls_failed);
            s.topic_deliveries = read_whole(from.topic_deliveries);
            s.slow_subscribers_closed = read_whole(from.slow_subscribers_closed);
            s.slow_subscribers_unsubscribed = read_whole(from.slow_subscribers_unsubscribed);
            s.websocket_upgrades = read_whole(from.websocket_upgrades);
            s.websocket_ended = read_whole(from.websocket_ended);
            s.websocket_messages_in = read_whole(from.websocket_messages_in);
            s.websocket_messages_out = read_whole(from.websocket_messages_out);
            for (std::size_t i = 0; i < 8; ++i)
                s.websocket_closes[i] = read_whole(from.websocket_closes[i]);
            into.listeners.push_back({listener, s, 0});
        } else if (kind == canary_kind) {
            const auto& from = *reinterpret_cast<const canary_stats*>(r->stats());
            // Reset by its shard for another canary while we read: the figures may be a mix,
            // so they are kept only if the same canary's before and after.
            canary_stats s;
            s.canary = __atomic_load_n(&from.canary, __ATOMIC_ACQUIRE);
            s.generation = read_whole(from.generation);
            s.requests = read_whole(from.requests);
            s.errors = read_whole(from.errors);
            read_whole(s.latency, from.latency);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.canary != 0 && read_whole(from.canary) == s.canary) {
                const char* plugin = names + r->listener_length + r->route_length;
                into.canary.push_back({std::string{plugin, r->plugin_length}, s});
            }
        } else if (kind == topics_kind) {
            const auto& from = *reinterpret_cast<const topic_stats*>(r->stats());
            into.topic_publishes += read_whole(from.publishes);
            into.redis.add(from.redis.snapshot());
        } else {
            const auto& from = *reinterpret_cast<const request_stats*>(r->stats());
            request_stats s;
            s.requests = read_whole(from.requests);
            read_whole(s.errors, from.errors);
            read_whole(s.latency, from.latency);
            s.latency_sum_us = read_whole(from.latency_sum_us);
            const char* route = names + r->listener_length;
            const char* plugin = route + r->route_length;
            into.requests.push_back({listener, std::string{route, r->route_length},
                                     std::string{plugin, r->plugin_length}, s,
                                     std::string{plugin + r->plugin_length, r->generation_length}});
        }
        at += r->bytes;
    }
}

void traffic_ledger::publish_gauges(std::string_view document) {
    ledger_header& h = head();
    if (document.size() > gauge_capacity) document = "{}";  // nothing rather than half
    const std::uint32_t s = h.gauge_sequence.load(std::memory_order_relaxed);
    h.gauge_sequence.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(h.gauges, document.data(), document.size());
    h.gauge_length.store(static_cast<std::uint32_t>(document.size()), std::memory_order_relaxed);
    h.gauge_sequence.store(s + 2, std::memory_order_release);
}

std::string traffic_ledger::gauges() const {
    const ledger_header& h = head();
    std::string copy;
    // The writer rewrites it a few times a second, in microseconds: a reader that met a
    // rewrite tries again, a bounded number of times.
    for (int attempt = 0; attempt < 1000; ++attempt) {
        const std::uint32_t before = h.gauge_sequence.load(std::memory_order_acquire);
        if (before % 2 != 0) continue;
        const std::size_t length =
            std::min<std::size_t>(h.gauge_length.load(std::memory_order_relaxed), gauge_capacity);
        copy.assign(h.gauges, length);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (h.gauge_sequence.load(std::memory_order_relaxed) == before) return copy;
    }
    return {};
}

void traffic_ledger::clear() {
    // Zero pages again, not rewritten: the next worker starts from an empty file.
    if (fd_ >= 0) {
        if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, region_bytes) != 0)
            std::memset(base_, 0, region_bytes);
    } else {
        std::memset(base_, 0, region_bytes);
    }
    head().magic = ledger_magic;
}

}  // namespace plugd
