// restart_needed: comparing the settings a process is set up with at start.
#include "reload/restart_needed.hpp"

#include <string>

namespace plugd {
namespace {

std::string admin_text(const server_config& c) {
    return c.admin
               ? c.admin->address + ":" + std::to_string(c.admin->port) +
                     (c.admin->allow_remote ? " (remote)" : "") +
                     (c.admin->token_file.empty() ? ""
                                                  : " token_file " + c.admin->token_file.string())
               : std::string{"none"};
}

// The bridge as a line: everything but the password, which is compared, never shown.
std::string redis_text(const server_config& c) {
    if (!c.topics.redis) return "none";
    const redis_settings& r = *c.topics.redis;
    return r.host + ":" + std::to_string(r.port) + " channel_prefix " + r.channel_prefix +
           " max_pending " + std::to_string(r.max_pending) +
           (r.password_file.empty() ? "" : " password_file " + r.password_file.string());
}

}  // namespace

void check_no_restart_needed(const server_config& running, const server_config& next) {
    auto unchanged = [&](const char* key, const std::string& before, const std::string& after) {
        if (before == after) return;
        throw config_error(next.source.string() + ": /" + key +
                           ": cannot change while running (\"" + before + "\" -> \"" + after +
                           "\"); restart plugd to change it, or put the old value back");
    };
    unchanged("user", running.user, next.user);
    unchanged("threads", std::to_string(running.threads), std::to_string(next.threads));
    // One process or a master with workers is decided at start.
    unchanged("workers", std::to_string(running.workers), std::to_string(next.workers));
    unchanged("supervise", running.supervise ? "true" : "false", next.supervise ? "true" : "false");
    unchanged("offload_threads", std::to_string(running.offload_threads),
              std::to_string(next.offload_threads));
    unchanged("offload_queue", std::to_string(running.offload_queue),
              std::to_string(next.offload_queue));
    // The topics are built once, for the whole process.
    unchanged("topics/max_message_bytes", std::to_string(running.topics.max_message_bytes),
              std::to_string(next.topics.max_message_bytes));
    // The bridge's connections and instance are made once, at start.
    unchanged("topics/redis", redis_text(running), redis_text(next));
    if (running.topics.redis && next.topics.redis &&
        running.topics.redis->password != next.topics.redis->password) {
        throw config_error(next.source.string() +
                           ": /topics/redis/password_file: the password in " +
                           next.topics.redis->password_file.string() +
                           " changed while running; the bridge keeps the one it started with: "
                           "restart plugd to use the new one, or put the old one back");
    }
    // The pid file is how `plugd -s` finds this server: moving it would leave a command
    // reading the old config's pid_file with nobody to find.
    unchanged("pid_file", running.pid_file.string(), next.pid_file.string());
    // The endpoint a reload may come through, and what it counts, stay as started.
    unchanged("admin", admin_text(running), admin_text(next));
    // The token is compared, never shown: the endpoint keeps the one it started with.
    if (running.admin && next.admin && running.admin->token != next.admin->token) {
        throw config_error(next.source.string() + ": /admin/token_file: the token in " +
                           next.admin->token_file.string() +
                           " changed while running; the admin endpoint keeps the one it started "
                           "with: restart plugd to use the new one, or put the old one back");
    }
}

}  // namespace plugd
