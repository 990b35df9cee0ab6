// process_setup: the open-file limit and switching to an unprivileged user.
#include "control/process_setup.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.hpp"
#include "plugins/private_dir.hpp"

namespace plugd {

void raise_descriptor_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t before = limit.rlim_cur;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
    }
    log::info("open file limit: " + std::to_string(limit.rlim_cur) +
              (limit.rlim_cur != before ? " (raised from " + std::to_string(before) + ")" : ""));
}

void drop_privileges(const server_config& cfg, const private_dir& dir) {
    if (cfg.user.empty()) return;
    const std::string where = cfg.source.string() + ": /user: ";
    if (::geteuid() != 0) {
        throw config_error(where + "plugd is not running as root, so it cannot switch to user \"" +
                           cfg.user + "\"; remove /user, or start plugd as root");
    }
    const passwd* pw = ::getpwnam(cfg.user.c_str());
    if (!pw) throw config_error(where + "no user named \"" + cfg.user + "\" on this machine");
    if (::chown(dir.path().c_str(), pw->pw_uid, pw->pw_gid) != 0 ||
        ::initgroups(pw->pw_name, pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 ||
        ::setuid(pw->pw_uid) != 0) {
        throw config_error(where + "cannot switch to user \"" + cfg.user +
                           "\": " + std::strerror(errno));
    }
    log::info("now running as user " + cfg.user + " (uid " + std::to_string(pw->pw_uid) +
              "): reloads read files and bind ports as this user");
    if (::access(cfg.pid_file.parent_path().c_str(), W_OK) != 0) {
        log::warn("user " + cfg.user + " cannot write in " + cfg.pid_file.parent_path().string() +
                  ": plugd -s reload will not see reload outcomes; put /pid_file in a folder "
                  "this user can write");
    }
}

}  // namespace plugd
