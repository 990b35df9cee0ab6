// plugin_host: the test harness (<plugd/testing.hpp>). A plugin version loaded by the
// core's own loader, on the core's own facilities, driven by calls instead of sockets.
#include <plugd/testing.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "framing/http_framing.hpp"
#include "host/host.hpp"
#include "log.hpp"
#include "plugins/abi_fingerprint.hpp"
#include "plugins/plugin_version.hpp"
#include "plugins/private_dir.hpp"
#include "routing/handler_chain.hpp"
#include "routing/request_attributes.hpp"
#include "testing/raw_pair.hpp"

namespace plugd::testing {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// The log lines of every host in this process (the core's log is process-wide).
struct captured_log {
    std::mutex mutex;
    std::vector<std::string> lines;
    int hosts = 0;                ///< live hosts: the sink is installed while there are any
    std::atomic<int> echoing{0};  ///< hosts that echo every line to stderr
};

captured_log& captured() {
    static captured_log log;
    return log;
}

void keep_line(log::level severity, std::string_view message) {
    static constexpr const char* names[] = {"debug", "info", "warn", "error"};
    std::string line = std::string{names[static_cast<int>(severity)]} + " " + std::string{message};
    auto& log = captured();
    if (severity >= log::level::warn || log.echoing.load() > 0) {
        std::fprintf(stderr, "plugd::testing: %s\n", line.c_str());
    }
    std::lock_guard lock{log.mutex};
    log.lines.push_back(std::move(line));
}

}  // namespace

// ---- pending_call ----

struct pending_call::state {
    std::shared_ptr<plugin_version> version;  ///< loaded while its exception may be rethrown
    /// The filters before it (options::filters), kept loaded as `version` is: the exception
    /// may be of a type a filter defines.
    std::vector<std::shared_ptr<plugin_version>> filters;
    std::vector<plugd::handler*> links;  ///< the filters' handlers, then the plugin's
    attribute_store attributes;          ///< what the chain attaches to the request
    detail::request_extras extras;
    asio::io_context* io = nullptr;
    std::chrono::milliseconds wait_limit{};
    std::string message;
    std::string peer = "127.0.0.1:40000";
    std::string listener = "test";
    bool http = false;
    std::string method, target, body, head;
    std::string reply;
    std::string fields;
    int status = 200;
    asio::cancellation_signal cancel;  ///< used on `io`'s thread only
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::exception_ptr error;

    void finish(std::exception_ptr e) {
        std::lock_guard lock{mutex};
        // A reply holds nothing of the plugin: its version may go. An exception's type may
        // be the plugin's: the version stays loaded as long as this call is kept.
        if (!e) {
            version.reset();
            filters.clear();
        }
        error = std::move(e);
        done = true;
        done_cv.notify_all();
    }
    void wait() {
        std::unique_lock lock{mutex};
        if (!done_cv.wait_for(lock, wait_limit, [&] { return done; })) {
            throw std::runtime_error(
                "plugd::testing: the call \"" + message + "\" did not return within " +
                std::to_string(wait_limit.count()) +
                " ms (wait_limit); with a manual clock, start() it, advance() the clock, then "
                "get()");
        }
    }
};

pending_call::pending_call(std::shared_ptr<state> s) noexcept : state_{std::move(s)} {}
pending_call::pending_call(pending_call&&) noexcept = default;
pending_call& pending_call::operator=(pending_call&&) noexcept = default;
pending_call::~pending_call() = default;

bool pending_call::ready() const {
    std::lock_guard lock{state_->mutex};
    return state_->done;
}

std::string pending_call::get() {
    state_->wait();
    if (state_->error) std::rethrow_exception(state_->error);
    return state_->reply;
}

void pending_call::cancel() {
    asio::post(*state_->io, [s = state_] { s->cancel.emit(asio::cancellation_type::terminal); });
}

// ---- raw_client ----

struct raw_client::state {
    raw_pair pair;
    std::shared_ptr<plugin_version> version;
    std::chrono::milliseconds wait_limit{};
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    bool closed = false;
    std::exception_ptr error;
};

raw_client::raw_client(std::shared_ptr<state> s) noexcept : state_{std::move(s)} {}
raw_client::raw_client(raw_client&&) noexcept = default;
raw_client& raw_client::operator=(raw_client&&) noexcept = default;

raw_client::~raw_client() {
    if (!state_ || state_->closed) return;
    try {
        close();
    } catch (...) {
        // Destruction reports nothing: call close() to see how serve() ended.
    }
}

void raw_client::write(std::string_view bytes) {
    state_->pair.client_write(bytes, state_->wait_limit);
}

std::string raw_client::read_until(std::string_view delimiter) {
    return state_->pair.client_read_until(delimiter, state_->wait_limit);
}

std::string raw_client::read_exactly(std::size_t size) {
    return state_->pair.client_read_exactly(size, state_->wait_limit);
}

std::string raw_client::read_to_end() {
    return state_->pair.client_read_to_end(state_->wait_limit);
}

void raw_client::close() {
    auto& s = *state_;
    s.closed = true;
    s.pair.client_shutdown();
    std::unique_lock lock{s.mutex};
    if (!s.done_cv.wait_for(lock, s.wait_limit, [&] { return s.done; })) {
        throw std::runtime_error(
            "plugd::testing: serve() did not return within " +
            std::to_string(s.wait_limit.count()) +
            " ms of the client closing the connection (wait_limit): it should return once a "
            "read returns 0");
    }
    if (s.error) std::rethrow_exception(s.error);
}

// ---- plugin_host ----

struct plugin_host::impl {
    options opts;
    std::filesystem::path file;                      ///< empty: a compiled-in handler
    plugin_version::handler_factory make = nullptr;  ///< set: a compiled-in handler
    std::size_t first_log_line = 0;

    std::mutex mutex;  ///< guards `released`
    std::condition_variable released_cv;
    std::uint64_t released = 0;  ///< bumped whenever a lease ends

    // Declared in this order so that the event loops (and the coroutine frames they still
    // hold) go before the host and the clock they refer to.
    manual_clock clock;
    std::unique_ptr<host> facilities;
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::vector<std::thread> threads;
    private_dir copies;
    std::uint64_t generation = 0;
    std::shared_ptr<plugin_version> current;
    /// options::filters, loaded once: a reload replaces `current` only.
    std::vector<std::shared_ptr<plugin_version>> filters;
    std::vector<std::shared_ptr<plugin_version>> draining;
    unsigned next_thread = 0;
    // What the host's end cancels (calls) or closes (connections) if still running.
    std::vector<std::weak_ptr<pending_call::state>> calls;
    std::vector<std::weak_ptr<raw_client::state>> connections;

    explicit impl(options o) : opts{std::move(o)} {
        if (opts.threads == 0)
            throw std::invalid_argument("plugd::testing: threads must be 1 or more");
        {
            auto& log = captured();
            std::lock_guard lock{log.mutex};
            first_log_line = log.lines.size();
            if (log.hosts++ == 0) log::set_sink(&keep_line);
        }
        if (opts.echo_log) ++captured().echoing;
        facilities = std::make_unique<host>(
            host::settings{std::max(1u, opts.offload_threads), opts.offload_queue}, [this] {
                std::lock_guard lock{mutex};
                ++released;
                released_cv.notify_all();
            });
        if (opts.manual_clock) facilities->use_manual_clock(clock);
        std::vector<asio::io_context*> loops;
        for (unsigned i = 0; i < opts.threads; ++i) {
            ios.push_back(std::make_unique<asio::io_context>(1));
            guards.push_back(asio::make_work_guard(*ios.back()));
            loops.push_back(ios.back().get());
        }
        facilities->set_serving_loops(loops);
        for (unsigned i = 0; i < opts.threads; ++i) {
            threads.emplace_back([this, i] {
                host::enter_serving_thread(*ios[i], i);
                ios[i]->run();
            });
        }
    }

    ~impl() {
        try {
            // As plugd's stop once its drain ran out: whatever still runs is cancelled.
            for (auto& weak : calls) {
                if (auto call = weak.lock()) {
                    asio::post(*call->io,
                               [call] { call->cancel.emit(asio::cancellation_type::terminal); });
                }
            }
            for (auto& weak : connections) {
                if (auto conn = weak.lock()) conn->pair.client_shutdown();
            }
            if (current) retire(std::move(current));
            for (auto& f : filters) retire(std::move(f));
            filters.clear();
            wait_drained(true);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "plugd::testing: %s\n", e.what());
        }
        // Versions that would not end stay loaded (and leak): unloading them could crash.
        for (auto& v : draining) new std::shared_ptr<plugin_version>(std::move(v));
        draining.clear();
        guards.clear();
        for (auto& io : ios) io->stop();
        for (auto& t : threads) t.join();
        clock.forget_sleepers();  // their timers belong to the event loops going now
        facilities->stop(std::chrono::steady_clock::now() + opts.wait_limit);
        if (opts.echo_log) --captured().echoing;
        auto& log = captured();
        std::lock_guard lock{log.mutex};
        if (--log.hosts == 0) log::set_sink(nullptr);  // the process's stderr again
    }

    plugin_spec spec_for(const std::string& name, const nlohmann::json& config,
                         const std::filesystem::path& plugin_file,
                         plugin_version::handler_factory factory) const {
        plugin_spec spec;
        spec.name = name;
        spec.config = config.is_null() ? nlohmann::json::object() : config;
        spec.shared_bytes = opts.shared_bytes;
        if (factory) {
            spec.file = "(compiled into the test)";
        } else {
            std::error_code ec;
            spec.file = std::filesystem::absolute(plugin_file, ec);
            spec.dir = spec.file.parent_path();
        }
        return spec;
    }

    // Loads and starts a version of `spec`. `check` runs between construction and start(),
    // as plugd checks a version against its listeners before starting it; what it throws
    // is thrown here, once the version is retired.
    template <class Check>
    std::shared_ptr<plugin_version> load_version(const plugin_spec& spec,
                                                 plugin_version::handler_factory factory,
                                                 std::uint64_t version_generation, Check check) {
        std::shared_ptr<plugin_version> v;
        try {
            v = factory ? std::make_shared<plugin_version>(spec, factory, version_generation,
                                                           *facilities)
                        : std::make_shared<plugin_version>(spec, copies.path(), version_generation,
                                                           *facilities);
            check(*v);
            v->start();
        } catch (const plugin_error& e) {
            // A start() that failed may have started tasks: they drain like a replaced
            // version's, and the version is unloaded here once they have ended.
            if (v) retire(std::move(v));
            throw std::runtime_error(e.what());
        } catch (...) {
            if (v) retire(std::move(v));
            throw;
        }
        return v;
    }

    std::shared_ptr<plugin_version> load(const nlohmann::json& config) {
        auto v = load_version(spec_for(opts.instance, config, file, make), make, generation + 1,
                              [](const plugin_version&) {});
        ++generation;
        return v;
    }

    // Loads options::filters, in order, refusing a plugin that cannot be a filter with the
    // reason plugd gives.
    void load_filters() {
        std::vector<std::string> names{opts.instance};
        for (std::size_t i = 0; i < opts.filters.size(); ++i) {
            const chain_link& link = opts.filters[i];
            const std::string where = "plugd::testing: options::filters[" + std::to_string(i) + "]";
            std::string name = link.instance;
            if (name.empty()) {
                name = link.make ? "filter" + std::to_string(i) : link.plugin_file.stem().string();
            }
            if (std::find(names.begin(), names.end(), name) != names.end()) {
                throw std::invalid_argument(
                    where + ": the instance name \"" + name +
                    "\" is already taken in this host (options::instance or an earlier filter); "
                    "set chain_link::instance so that each instance has its own");
            }
            names.push_back(name);
            const auto check = [&where](const plugin_version& v) {
                const std::string what =
                    where + ": plugin \"" + v.spec().name + "\" (" + v.spec().file.string() + ")";
                if (v.filters()) return;
                if (sdk_minor_of(v.abi_fingerprint()) < 4) {
                    throw std::runtime_error(what +
                                             " was built against an SDK older than 1.4, which "
                                             "has no filters; rebuild it against this plugd's "
                                             "SDK");
                }
                throw std::runtime_error(
                    what +
                    " does not override plugd::handler::filter(plugd::request, plugd::reply&, "
                    "plugd::chain_next), so it can only be the last instance of a chain; a "
                    "filter() with another signature does not override it (declare it with "
                    "`override` to see why), or make it the host's own plugin");
            };
            filters.push_back(load_version(spec_for(name, link.config, link.plugin_file, link.make),
                                           link.make, 1, check));
        }
    }

    // As the server's drain: no new calls reach it, its tasks are cancelled, its pooled
    // outbound connections closed; it is unloaded once nothing of it runs.
    void retire(std::shared_ptr<plugin_version> v) {
        v->retire();
        draining.push_back(std::move(v));
    }

    // Unloads the drained versions (stop(), then the library), on this thread as plugd does
    // on its control thread. With `all`, waits up to wait_limit for the others.
    void wait_drained(bool all) {
        const auto deadline = std::chrono::steady_clock::now() + opts.wait_limit;
        for (;;) {
            std::uint64_t seen;
            {
                std::lock_guard lock{mutex};
                seen = released;
            }
            std::erase_if(draining, [](const std::shared_ptr<plugin_version>& v) {
                return drained(v);  // this reference alone: unload it now
            });
            if (!all || draining.empty()) return;
            std::unique_lock lock{mutex};
            // Calls end without a lease: look again every few ms as well.
            released_cv.wait_for(lock, 5ms, [&] { return released != seen; });
            if (std::chrono::steady_clock::now() > deadline) {
                std::string names;
                for (const auto& v : draining) {
                    for (const auto& t : v->tasks().running()) names += " " + t;
                }
                throw std::runtime_error(
                    "plugd::testing: a replaced version still runs after wait_limit (" +
                    std::to_string(opts.wait_limit.count()) +
                    " ms): a call not awaited, a raw "
                    "connection not closed, an offloaded job, or tasks that ignore "
                    "cancellation:" +
                    (names.empty() ? " (no task)" : names));
            }
        }
    }

    asio::io_context& worker(unsigned thread) {
        if (thread >= ios.size()) {
            throw std::out_of_range("plugd::testing: thread " + std::to_string(thread) +
                                    " does not exist; options::threads is " +
                                    std::to_string(ios.size()));
        }
        return *ios[thread];
    }

    std::shared_ptr<pending_call::state> begin(unsigned thread) {
        wait_drained(false);
        auto s = std::make_shared<pending_call::state>();
        s->version = current;
        s->filters = filters;
        for (const auto& f : filters) s->links.push_back(&f->handler());
        s->links.push_back(&current->handler());
        s->extras.attributes = &s->attributes;
        s->io = &worker(thread);
        s->wait_limit = opts.wait_limit;
        return s;
    }

    static asio::awaitable<void> run_call(std::shared_ptr<pending_call::state> s) {
        std::exception_ptr error;
        try {
            http_request_view view{s->method, s->target, s->body, s->head};
            http_reply_head head{200, &s->fields};
            reply out{s->reply, s->http ? &head : nullptr};
            const handler_chain chain{s->links};  // of one, without filters: handle() alone
            co_await chain(
                request{s->message, s->peer, s->listener, s->http ? &view : nullptr, &s->extras},
                out);
            s->status = head.status;
        } catch (...) {
            s->reply.clear();
            error = std::current_exception();
        }
        s->finish(std::move(error));
    }

    void launch(const std::shared_ptr<pending_call::state>& s) {
        std::erase_if(calls, [](const auto& weak) { return weak.expired(); });
        calls.push_back(s);
        // The state owns the signal whose slot co_spawn uses until this handler returns:
        // its last reference goes in a later handler, as a connection's does.
        asio::co_spawn(*s->io, run_call(s),
                       asio::bind_cancellation_slot(s->cancel.slot(), [s](std::exception_ptr) {
                           asio::post(*s->io, [s] {});
                       }));
    }
};

plugin_host::plugin_host(const std::filesystem::path& plugin_file, options opts)
    : impl_{std::make_unique<impl>(std::move(opts))} {
    impl_->file = plugin_file;
    impl_->load_filters();
    impl_->current = impl_->load(impl_->opts.config);
}

plugin_host::plugin_host(factory make, options opts)
    : impl_{std::make_unique<impl>(std::move(opts))} {
    impl_->make = make;
    impl_->load_filters();
    impl_->current = impl_->load(impl_->opts.config);
}

plugin_host::~plugin_host() = default;
plugin_host::plugin_host(plugin_host&&) noexcept = default;

std::string plugin_host::call(std::string_view message) {
    return start(message, 0).get();
}

pending_call plugin_host::start(std::string_view message, unsigned thread) {
    auto s = impl_->begin(thread);
    s->message = message;
    impl_->launch(s);
    return pending_call{std::move(s)};
}

http_reply plugin_host::call_http(std::string_view method, std::string_view target,
                                  std::string_view body,
                                  const std::vector<std::pair<std::string, std::string>>& headers) {
    auto s = impl_->begin(0);
    s->http = true;
    // The bytes a client would send, framed by plugd's own HTTP parser.
    std::string bytes = std::string{method} + " " + std::string{target} + " HTTP/1.1\r\n";
    bool host_given = false;
    for (const auto& [name, value] : headers) {
        bytes += name + ": " + value + "\r\n";
        host_given = host_given || name == "Host" || name == "host";
    }
    if (!host_given) bytes += "Host: plugd-test\r\n";
    if (!body.empty()) bytes += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    bytes += "\r\n";
    bytes += body;
    http_codec codec;
    const frame request = codec.decode(bytes, bytes.size() + 1, true);
    if (request.what != frame::kind::request) {
        throw std::invalid_argument(
            std::string{"plugd::testing: call_http: plugd would refuse "
                        "this request: "} +
            (request.what == frame::kind::refused ? request.reason : "incomplete"));
    }
    s->method = request.http->method;
    s->target = request.http->target;
    s->body = request.http->body;
    s->head = request.http->head;
    s->message = request.message;
    impl_->launch(s);
    pending_call call{s};
    http_reply r;
    r.body = call.get();
    r.status = s->status;
    r.fields = s->fields;
    return r;
}

std::vector<std::string> plugin_host::call_concurrently(const std::vector<std::string>& messages) {
    std::vector<pending_call> calls;
    calls.reserve(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) {
        calls.push_back(start(messages[i], static_cast<unsigned>(i % impl_->ios.size())));
    }
    std::vector<std::string> replies;
    replies.reserve(messages.size());
    for (auto& c : calls) replies.push_back(c.get());
    return replies;
}

raw_client plugin_host::connect() {
    impl_->wait_drained(false);
    if (!impl_->filters.empty()) {
        throw std::runtime_error(
            "plugd::testing: connect(): options::filters is set, but a raw listener hands the "
            "whole connection to one plugin, so there is no request for a filter to see (plugd "
            "refuses a chain on a raw listener); test the filters with call() or call_http()");
    }
    if (!impl_->current->built_with_serve()) {
        throw std::runtime_error("plugd::testing: connect(): plugin " + impl_->file.string() +
                                 " was built against an SDK older than 1.3, which cannot serve "
                                 "whole connections; rebuild it against this plugd's SDK");
    }
    if (!impl_->current->serves_connections()) {
        throw std::runtime_error("plugd::testing: connect(): plugin " + impl_->file.string() +
                                 " does not override plugd::handler::serve(plugd::connection&) "
                                 "(a serve() with another signature does not override it: "
                                 "declare it with `override`)");
    }
    auto s = std::make_shared<raw_client::state>();
    s->version = impl_->current;
    s->wait_limit = impl_->opts.wait_limit;
    const unsigned thread = impl_->next_thread++ % impl_->ios.size();
    auto conn = s->pair.serving_end(impl_->worker(thread), impl_->opts.instance, thread);
    auto& io = impl_->worker(thread);
    auto serve = [](std::shared_ptr<raw_client::state> s,
                    std::unique_ptr<connection> conn) -> asio::awaitable<void> {
        std::exception_ptr error;
        try {
            co_await s->version->handler().serve(*conn);
        } catch (...) {
            error = std::current_exception();
        }
        conn.reset();  // closes the plugin's end
        std::lock_guard lock{s->mutex};
        if (!error) s->version.reset();  // kept while serve()'s exception may be rethrown
        s->error = std::move(error);
        s->done = true;
        s->done_cv.notify_all();
    };
    std::erase_if(impl_->connections, [](const auto& weak) { return weak.expired(); });
    impl_->connections.push_back(s);
    asio::co_spawn(io, serve(s, std::move(conn)), asio::detached);
    // The worker thread runs serve() up to its first wait before this marker: a test's next
    // step then finds what it did first (subscribing to a topic, say) done.
    std::promise<void> started;
    asio::post(io, [&started] { started.set_value(); });
    started.get_future().wait();
    return raw_client{std::move(s)};
}

void plugin_host::reload(nlohmann::json config) {
    if (impl_->make) {
        reload_compiled(impl_->make, std::move(config));
        return;
    }
    auto next = impl_->load(config);
    impl_->opts.config = std::move(config);
    impl_->retire(std::exchange(impl_->current, std::move(next)));
    impl_->wait_drained(false);
}

void plugin_host::reload(const std::filesystem::path& plugin_file, nlohmann::json config) {
    const auto previous = std::exchange(impl_->file, plugin_file);
    const auto previous_make = std::exchange(impl_->make, nullptr);
    try {
        reload(std::move(config));
    } catch (...) {
        impl_->file = previous;
        impl_->make = previous_make;
        throw;
    }
}

void plugin_host::reload_compiled(factory make, nlohmann::json config) {
    const auto previous = std::exchange(impl_->make, make);
    try {
        auto next = impl_->load(config);
        impl_->opts.config = std::move(config);
        impl_->retire(std::exchange(impl_->current, std::move(next)));
        impl_->wait_drained(false);
    } catch (...) {
        impl_->make = previous;
        throw;
    }
}

std::size_t plugin_host::draining_versions() {
    impl_->wait_drained(false);
    return impl_->draining.size();
}

void plugin_host::advance(std::chrono::milliseconds duration) {
    if (!impl_->opts.manual_clock) {
        throw std::logic_error("plugd::testing: advance() needs options::manual_clock = true");
    }
    // After each wake-up, every event loop runs what is queued, twice over: the timer's
    // cancellation queues its completion, which resumes the sleeper up to its next wait.
    const auto settle = [this] {
        for (int round = 0; round < 3; ++round) {
            std::vector<std::future<void>> drained;
            for (auto& io : impl_->ios) {
                auto done = std::make_shared<std::promise<void>>();
                drained.push_back(done->get_future());
                asio::post(*io, [done] { done->set_value(); });
            }
            for (auto& f : drained) {
                if (f.wait_for(impl_->opts.wait_limit) != std::future_status::ready) {
                    throw std::runtime_error(
                        "plugd::testing: advance(): a worker thread did not come back within "
                        "wait_limit: something blocks it");
                }
            }
        }
    };
    impl_->clock.advance(duration, settle);
}

void plugin_host::publish(std::string_view topic, std::string_view message, message_type type) {
    impl_->facilities->topics().publish(topic, message, type, {});
}

shared_map& plugin_host::shared() {
    return impl_->current->shared_state();
}

shared_map& plugin_host::shared(std::string_view instance) {
    if (instance == impl_->opts.instance) return shared();
    std::string names = "\"" + impl_->opts.instance + "\"";
    for (const auto& f : impl_->filters) {
        if (f->spec().name == instance) return f->shared_state();
        names += ", \"" + f->spec().name + "\"";
    }
    throw std::out_of_range("plugd::testing: shared(\"" + std::string{instance} +
                            "\"): no instance of that name in this host; its instances: " + names);
}

std::vector<std::string> plugin_host::log_lines() const {
    auto& log = captured();
    std::lock_guard lock{log.mutex};
    return {log.lines.begin() +
                static_cast<std::ptrdiff_t>(std::min(impl_->first_log_line, log.lines.size())),
            log.lines.end()};
}

}  // namespace plugd::testing
