// process_setup: what the process itself needs before and after binding: descriptors, user.
#pragma once

#include <sys/types.h>

#include <string>

#include "config.hpp"

namespace plugd {

class private_dir;

/// Each connection is a descriptor: the soft limit (often 1024) would cap a server long
/// before max_connections does. Raises it to the hard limit (which only root could raise)
/// and logs the result.
void raise_descriptor_limit();

/// The account `"user"` names.
struct user_account {
    std::string name;
    uid_t uid;
    gid_t gid;
};

/// The account `cfg.user` names, which this process can switch to. Throws config_error
/// when plugd is not running as root (it could not switch) or there is no such user.
user_account account_to_run_as(const server_config& cfg);

/// `"user"`: once every privileged step is done (binding low ports, reading root-only
/// files), continues as that user; the private plugin folder changes hands too, since
/// reloads write copies there. Throws config_error saying what to fix.
void drop_privileges(const server_config& cfg, const private_dir& dir);

/// A worker of a master running as root, with `"user"`: switches to `user` (supplementary
/// groups too) as the first thing it does, before it reads its configuration or loads a
/// plugin. Returns the user's uid (the caller logs it, once the log has its format). Throws
/// std::runtime_error when the switch fails or root could be regained: the worker then
/// exits instead of serving as root.
uid_t become_worker_user(const std::string& user);

}  // namespace plugd
