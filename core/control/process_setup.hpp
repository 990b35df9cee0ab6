// process_setup: what the process itself needs before and after binding: descriptors, user.
#pragma once

#include "config.hpp"

namespace plugd {

class private_dir;

/// Each connection is a descriptor: the soft limit (often 1024) would cap a server long
/// before max_connections does. Raises it to the hard limit (which only root could raise)
/// and logs the result.
void raise_descriptor_limit();

/// `"user"`: once every privileged step is done (binding low ports, reading root-only
/// files), continues as that user; the private plugin folder changes hands too, since
/// reloads write copies there. Throws config_error saying what to fix.
void drop_privileges(const server_config& cfg, const private_dir& dir);

}  // namespace plugd
