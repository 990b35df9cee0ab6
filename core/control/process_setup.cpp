// process_setup: the open-file limit and switching to an unprivileged user.
#include "control/process_setup.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

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

namespace {

// In the order that works: supplementary groups and the group while still root, the user
// last (after it, neither could be changed any more).
bool switch_to(const user_account& a) {
    return ::initgroups(a.name.c_str(), a.gid) == 0 && ::setgid(a.gid) == 0 && ::setuid(a.uid) == 0;
}

}  // namespace

user_account account_to_run_as(const server_config& cfg) {
    const std::string where = cfg.source.string() + ": /user: ";
    if (::geteuid() != 0) {
        throw config_error(where + "plugd is not running as root, so it cannot switch to user \"" +
                           cfg.user + "\"; remove /user, or start plugd as root");
    }
    const passwd* pw = ::getpwnam(cfg.user.c_str());
    if (!pw) throw config_error(where + "no user named \"" + cfg.user + "\" on this machine");
    return {pw->pw_name, pw->pw_uid, pw->pw_gid};
}

void drop_privileges(const server_config& cfg, const private_dir& dir) {
    if (cfg.user.empty()) return;
    const user_account account = account_to_run_as(cfg);
    if (::chown(dir.path().c_str(), account.uid, account.gid) != 0 || !switch_to(account)) {
        throw config_error(cfg.source.string() + ": /user: cannot switch to user \"" + cfg.user +
                           "\": " + std::strerror(errno));
    }
    log::info("now running as user " + cfg.user + " (uid " + std::to_string(account.uid) +
              "): reloads read files and bind ports as this user");
    if (::access(cfg.pid_file.parent_path().c_str(), W_OK) != 0) {
        log::warn("user " + cfg.user + " cannot write in " + cfg.pid_file.parent_path().string() +
                  ": plugd -s reload will not see reload outcomes; put /pid_file in a folder "
                  "this user can write");
    }
}

uid_t become_worker_user(const std::string& user) {
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw) {
        throw std::runtime_error("cannot switch to user \"" + user +
                                 "\": no such user on this machine any more; a worker never "
                                 "serves as root: create the user, or change /user and restart");
    }
    const user_account account{pw->pw_name, pw->pw_uid, pw->pw_gid};
    if (!switch_to(account)) {
        throw std::runtime_error("cannot switch to user \"" + user + "\" (uid " +
                                 std::to_string(account.uid) + "): " + std::strerror(errno) +
                                 "; a worker never serves as root");
    }
    // Were there a way back to root (there should not be), plugin code could take it.
    if (account.uid != 0 && (::geteuid() == 0 || ::setuid(0) == 0)) {
        throw std::runtime_error("switched to user \"" + user +
                                 "\" but could still become root again; a worker never serves "
                                 "as root");
    }
    return account.uid;
}

}  // namespace plugd
