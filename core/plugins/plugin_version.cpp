// plugin_version: loading a plugin safely (fingerprint first, private copy) and unloading it.
#include "plugins/plugin_version.hpp"

#define BOOST_DLL_USE_STD_FS 1
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <plugd/handler.hpp>
#include <plugd/plugin.hpp>

#include <boost/asio/post.hpp>
#include "plugins/abi_fingerprint.hpp"
#include "plugins/elf_section.hpp"

#include "faults/plugin_code_map.hpp"
#include "host/host.hpp"
#include "host/shared_state.hpp"
#include "log.hpp"
#include "plugins/plugin_context.hpp"
#include "plugins/plugin_seal.hpp"

namespace plugd {
namespace {

constexpr const char* factory_symbol = "plugd_make_handler";
// Which entry points the handler type overrides (PLUGD_PLUGIN; absent in older plugins).
constexpr const char* entry_points_symbol = "plugd_entry_points";
constexpr const char* fingerprint_section = ".plugd_abi";

std::string where(const plugin_spec& spec) {
    return "plugin \"" + spec.name + "\" (" + spec.file.string() + ")";
}

// Anyone who can write a plugin file, or the folder it is in, can run code inside plugd.
// Like sshd's StrictModes for keys, refuse such files instead of trusting them, and refuse
// a symbolic link that leads out of plugin_dir.
void check_trust(const plugin_spec& spec) {
    std::error_code ec;
    const auto dir = std::filesystem::canonical(spec.dir, ec);
    if (ec) {
        throw plugin_error(where(spec) + ": plugin_dir " + spec.dir.string() +
                           " is not usable: " + ec.message() + "; check /plugin_dir");
    }
    const auto file = std::filesystem::canonical(spec.file, ec);
    if (ec) return;  // missing: read_file says so, with the advice that fits
    const auto inside = file.lexically_relative(dir);
    if (inside.empty() || *inside.begin() == "..") {
        throw plugin_error(where(spec) + ": resolves to " + file.string() +
                           ", outside plugin_dir " + dir.string() +
                           "; plugins load only from plugin_dir: copy the file there");
    }
    for (const auto& path : {file, file.parent_path()}) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) continue;
        // Group write is fine for a user-private group (the owner's own primary group, the
        // Debian default with umask 002): nobody else is in it.
        const passwd* owner = ::getpwuid(st.st_uid);
        const bool private_group = owner && owner->pw_gid == st.st_gid;
        if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && !private_group)) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            throw plugin_error(where(spec) + ": refused: " + path.string() +
                               " is writable by other users (mode " + mode +
                               "), who could make plugd run their code; fix it with: chmod go-w " +
                               path.string());
        }
        if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
            throw plugin_error(
                where(spec) + ": refused: " + path.string() + " belongs to uid " +
                std::to_string(st.st_uid) +
                ", neither root nor the user plugd runs as; chown it to one of them");
        }
    }
}

std::string read_file(const plugin_spec& spec) {
    std::ifstream in{spec.file, std::ios::binary};
    if (!in) {
        throw plugin_error(where(spec) + ": cannot read the file: " + std::strerror(errno) +
                           "; check /plugins/" + spec.name + "/file and /plugin_dir");
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return std::move(bytes).str();
}

std::uint64_t hash_of(std::string_view bytes) noexcept {
    return fnv1a(bytes);  // stable across runs and builds
}

// Whether /proc/self/maps still lists the (unlinked) private copy.
bool is_mapped(const std::filesystem::path& copy) {
    std::ifstream maps{"/proc/self/maps"};
    const std::string name = copy.string();
    for (std::string line; std::getline(maps, line);) {
        if (line.find(name) != std::string::npos) return true;
    }
    return false;
}

}  // namespace

struct plugin_version::library {
    boost::dll::shared_library dll;
    int code_slot = -1;  ///< in the plugin code map, for crash reports
    library() = default;
    library(const library&) = delete;
    library& operator=(const library&) = delete;
    ~library() {
        // Where it was stays known: a thread it left behind faults there. Noted before
        // the unmapping, not after: such a thread can fault in the instant between.
        note_plugin_unloaded(code_slot);
        dll.unload();
    }
};

void check_listeners_can_serve(
    const server_config& cfg,
    const std::function<const plugin_version&(const std::string&)>& version_of) {
    for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        for_each_chain(l, i, [&](const std::vector<std::string>& chain, const std::string& at) {
            // Every instance but the last stands before another: it must be a filter.
            for (std::size_t k = 0; k + 1 < chain.size(); ++k) {
                const plugin_version& version = version_of(chain[k]);
                if (version.filters()) continue;
                throw plugin_error(
                    "listener \"" + l.name + "\" (" + at + "/chain/" + std::to_string(k) +
                    "): plugin \"" + chain[k] + "\" (" + version.spec().file.string() +
                    ") is not a filter, so it cannot stand before \"" + chain[k + 1] +
                    "\" in a chain: it does not override plugd::handler::filter(plugd::request, "
                    "plugd::reply&, plugd::chain_next)" +
                    (sdk_minor_of(version.abi_fingerprint()) < 4
                         ? " (it was built against an SDK older than 1.4, which has no filters)"
                         : "") +
                    "; put it last, or use a filter plugin there");
            }
            const std::string& last = chain.back();
            const plugin_version& version = version_of(last);
            const std::string framing = "\"" + std::string{to_string(l.framing)} + "\"";
            const std::string where =
                "listener \"" + l.name + "\" (" +
                (l.routes.empty() ? at + "/framing is " + framing : at + ", framing " + framing) +
                "): plugin \"" + last + "\" (" + version.spec().file.string() + ")";
            if (!hands_over_connections(l.framing)) {
                if (version.answers_requests()) return;
                // An http route may lead to a plugin that only serves WebSocket sessions.
                if (l.framing == framing_kind::http && version.serves_sessions()) return;
                throw plugin_error(
                    where +
                    " does not override plugd::handler::handle(plugd::request, "
                    "plugd::reply&), so it could only answer every request with an "
                    "error; a handle() with another signature does not override it "
                    "(declare it with `override` to see why), or use the plugin on a "
                    "listener with \"framing\": \"raw\" if it serves whole connections" +
                    (l.framing == framing_kind::http
                         ? std::string{" (or override "
                                       "plugd::handler::serve_session(plugd::session&) "
                                       "if it serves WebSocket sessions)"}
                         : std::string{}));
            }
            if (!version.built_with_serve()) {
                throw plugin_error(where +
                                   " was built against an SDK older than 1.3, which cannot serve "
                                   "whole connections; rebuild it against this plugd's SDK");
            }
            if (!version.serves_connections()) {
                throw plugin_error(
                    where +
                    " does not override plugd::handler::serve(plugd::connection&), so "
                    "it cannot serve a whole connection; a serve() with another "
                    "signature does not override it (declare it with `override`), or "
                    "use the plugin on a line, oneshot or http listener");
            }
        });
    }
}

std::uint64_t plugin_file_hash(const plugin_spec& spec) {
    return hash_of(read_file(spec));
}

plugin_version::plugin_version(plugin_spec spec, const std::filesystem::path& private_dir,
                               std::uint64_t generation, host& facilities)
    : spec_{std::move(spec)},
      generation_{generation},
      host_{facilities},
      tasks_{"plugin " + spec_.name + " generation " + std::to_string(generation)},
      outbound_{facilities.serving_threads(), spec_.outbound, spec_.name} {
    check_trust(spec_);
    const std::string image = read_file(spec_);
    content_hash_ = hash_of(image);

    // The fingerprint is checked on the bytes we are about to load, before dlopen: a
    // plugin built against another SDK, compiler or Boost never gets to run a constructor.
    std::optional<std::string_view> fingerprint;
    try {
        fingerprint = elf_section(image, fingerprint_section);
    } catch (const not_a_shared_library& e) {
        throw plugin_error(where(spec_) + ": not a shared library: " + e.what() + "; /plugins/" +
                           spec_.name +
                           "/file must name a plugin built with "
                           "plugd_add_plugin()");
    }
    if (!fingerprint) {
        throw plugin_error(where(spec_) +
                           ": not a plugd plugin (it has no .plugd_abi section); export the "
                           "handler with PLUGD_PLUGIN(type) and build it with plugd_add_plugin()");
    }
    std::string_view found = *fingerprint;
    while (!found.empty() && found.back() == '\0') found.remove_suffix(1);
    if (auto diff = abi_mismatch(found, core_abi_fingerprint())) {
        throw plugin_error(where(spec_) + ": built for another plugd ABI (" + *diff +
                           "); rebuild the plugin against this plugd's SDK");
    }
    abi_fingerprint_ = found;
    loaded_at_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    if (auto why = seal_mismatch(image)) throw plugin_error(where(spec_) + ": refused: " + *why);

    // glibc returns the already-loaded object when dlopen is given a path it has loaded,
    // so a new build at the same path would run the old code. Each version is loaded from
    // its own private copy instead; the copy is unlinked once mapped.
    // Named per load, not per generation: a failed reload's copy may still be mapped (a
    // library that cannot unload), and dlopen must never be handed a name it knows.
    static std::atomic<std::uint64_t> loads{0};
    private_copy_ = private_dir / (spec_.name + "." + std::to_string(generation_) + "." +
                                   std::to_string(++loads) + ".so");
    const auto& copy = private_copy_;
    {
        std::ofstream out{copy, std::ios::binary | std::ios::trunc};
        out.write(image.data(), static_cast<std::streamsize>(image.size()));
        if (!out.flush()) {
            throw plugin_error(where(spec_) + ": cannot write the private copy " + copy.string() +
                               ": " + std::strerror(errno));
        }
    }
    struct unlink_copy {
        const std::filesystem::path& p;
        ~unlink_copy() {
            std::error_code ignored;
            std::filesystem::remove(p, ignored);
        }
    } cleanup{copy};

    try {
        boost::dll::library_info info{copy};
        const auto symbols = info.symbols();
        if (std::find(symbols.begin(), symbols.end(), factory_symbol) == symbols.end()) {
            throw plugin_error(where(spec_) + ": does not export " + factory_symbol +
                               "; add PLUGD_PLUGIN(your_handler_type) to one source file");
        }
    } catch (const plugin_error&) {
        throw;
    } catch (const std::exception& e) {
        throw plugin_error(where(spec_) + ": cannot read its symbol table: " + e.what());
    }

    library_ = std::make_unique<library>();
    try {
        library_->dll.load(copy,
                           boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        const std::string why = e.what();
        const bool noexec = why.find("failed to map segment") != std::string::npos;
        throw plugin_error(where(spec_) + ": cannot load: " + why +
                           (noexec ? "; plugd loads private copies from " + private_dir.string() +
                                         ", which seems mounted noexec: set TMPDIR to a folder "
                                         "where libraries may be mapped"
                                   : "; a missing symbol usually means a library the plugin "
                                     "needs is not linked or installed"));
    }

    std::uintptr_t begin = 0, end = 0;
    if (library_range(library_->dll.native(), begin, end))
        library_->code_slot = note_plugin_loaded(spec_.name.c_str(), generation_, begin, end);
    if (library_->dll.has(entry_points_symbol))
        entry_points_ = library_->dll.get<const unsigned>(entry_points_symbol);
    construct(library_->dll.get<plugd::handler*(plugd::context&)>(factory_symbol));
}

plugin_version::plugin_version(plugin_spec spec, handler_factory make, std::uint64_t generation,
                               host& facilities)
    : spec_{std::move(spec)},
      generation_{generation},
      abi_fingerprint_{core_abi_fingerprint()},
      host_{facilities},
      tasks_{"plugin " + spec_.name + " generation " + std::to_string(generation)},
      outbound_{facilities.serving_threads(), spec_.outbound, spec_.name} {
    loaded_at_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    construct(make);
}

void plugin_version::construct(handler_factory make) {
    try {
        state_ = host_.state().map_for(spec_.name, spec_.shared_bytes, spec_.state_file);
    } catch (const std::exception& e) {
        throw plugin_error(where(spec_) + ": its shared state cannot be loaded: " + e.what());
    }
    context_ = std::make_unique<plugin_context>(spec_.name, spec_.config, *this);
    try {
        handler_.reset(make(*context_));
    } catch (const std::invalid_argument& e) {
        throw plugin_error(where(spec_) + ": refused its config (/plugins/" + spec_.name +
                           "/config): " + e.what());
    } catch (const nlohmann::json::exception& e) {
        // ctx.config().value("key", default) with a value of another type, and the like.
        throw plugin_error(where(spec_) + ": refused its config (/plugins/" + spec_.name +
                           "/config): " + e.what());
    } catch (const std::exception& e) {
        // Not the config's fault, as far as the plugin says: a database that cannot be
        // opened, a file that is missing.
        throw plugin_error(where(spec_) + ": failed to start: " + e.what() +
                           " (thrown by its constructor; if the config is what is wrong, "
                           "throw std::invalid_argument naming the key)");
    } catch (...) {
        throw plugin_error(where(spec_) + ": its constructor threw a non-standard exception");
    }
}

plugin_version::~plugin_version() {
    stop();
    handler_.reset();  // plugin code: must run before the library goes away
    context_.reset();
    if (!library_) return;
    library_.reset();
    // glibc keeps a library mapped when it has STB_GNU_UNIQUE symbols or registered
    // thread_local destructors. Nothing crashes, but every reload would leak a copy.
    if (is_mapped(private_copy_)) {
        log::warn(where(spec_) + " generation " + std::to_string(generation_) +
                  ": still mapped after unloading. Build it with plugd_add_plugin() (which "
                  "adds -fno-gnu-unique) and remove thread_local objects with destructors; "
                  "until then each reload of it leaks one copy");
    }
}

version_lease plugin_version::lease(const char* use) {
    std::shared_ptr<plugin_version> self = weak_from_this().lock();
    if (!self) {
        throw std::logic_error(std::string{use} +
                               "() cannot be called from the plugin's constructor; call it "
                               "from start() or handle()");
    }
    return version_lease{std::move(self), host_.lease_released()};
}

void plugin_version::retire() {
    tasks_.cancel_all();
    outbound_.stop_pooling();
    for (std::size_t i = 0; i < host_.serving_threads(); ++i) {
        boost::asio::post(host_.serving_loop(i),
                          [this, i, lease = lease("retire")] { outbound_.close_idle(i); });
    }
}

bool drained(const std::shared_ptr<plugin_version>& version) noexcept {
    if (version.use_count() > 1) return false;
    // Pairs with the release of each reference dropped on another thread (a shard, a
    // lease): what that thread did to the version happened before it is destroyed.
    std::atomic_thread_fence(std::memory_order_acquire);
    return true;
}

bool plugin_version::built_with_serve() const {
    return sdk_minor_of(abi_fingerprint_) >= 3;
}

bool plugin_version::serves_connections() const {
    return built_with_serve() && (entry_points_ & detail::serves_connections) != 0;
}

bool plugin_version::answers_requests() const noexcept {
    return (entry_points_ & detail::answers_requests) != 0;
}

bool plugin_version::filters() const {
    // Before 1.4 the handler has no filter slot to call, whatever the entry points say.
    return sdk_minor_of(abi_fingerprint_) >= 4 && (entry_points_ & detail::filters) != 0;
}

bool plugin_version::serves_sessions() const {
    return sdk_minor_of(abi_fingerprint_) >= 5 && (entry_points_ & detail::serves_sessions) != 0;
}

std::string plugin_version::describe() const {
    return "plugin " + spec_.name + " generation " + std::to_string(generation_);
}

void plugin_version::start() {
    try {
        handler_->start();
        started_ = true;
    } catch (const std::exception& e) {
        throw plugin_error(where(spec_) + ": start() failed: " + e.what());
    } catch (...) {
        throw plugin_error(where(spec_) + ": start() threw a non-standard exception");
    }
}

void plugin_version::stop() noexcept {
    if (!started_) return;
    started_ = false;
    handler_->stop();
}

}  // namespace plugd
