// worker_folder: where a master's workers write (their reload outcomes and crash notes),
// owned by the user they run as, and the check that the master's own files next to it are
// out of that user's reach.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "control/process_setup.hpp"

namespace plugd {

/// With `"user"` the master stays root and keeps root's files (the pid file, the generation
/// store) in the folder of `cfg.pid_file`: the workers' user must be able to reach into it
/// (to read the store's copies) and must not be able to change it (or it could swap the
/// master's files for links the master would then write through). Checks, from the owner,
/// group and mode of each folder and the user's groups (ACLs aside), that this folder is not
/// writable by `user` and that it and every folder above it are searchable by `user`. Throws
/// config_error naming the folder and the fix.
void check_master_folder(const server_config& cfg, const user_account& user);

/// `<pid_file>.workers`: one status file (reload_status) and one crash note per worker.
/// Created afresh, mode 0700, owned by `owner` (the workers' user) or, without one, by this
/// process's user; removed by the destructor.
class worker_folder {
  public:
    /// Throws config_error when a folder left there by an earlier master cannot be removed.
    worker_folder(std::filesystem::path dir, const std::optional<user_account>& owner);
    ~worker_folder();
    worker_folder(const worker_folder&) = delete;
    worker_folder& operator=(const worker_folder&) = delete;

    /// Where worker `i` records its reload outcomes.
    std::filesystem::path status_file(unsigned i) const;
    /// Where a crashing worker `i`'s handler notes the plugin it died in (see crash_report).
    std::filesystem::path crash_note(unsigned i) const;
    /// The plugin worker `i`'s crash note names; empty when there is none or it names the
    /// core. The workers' user owns the folder: the note is read only if it is a regular
    /// file (not a link to one of root's), and only its first 256 bytes.
    std::string crashed_plugin(unsigned i) const;
    /// The generation of the plugin version the note names (0 when none).
    std::uint64_t crashed_generation(unsigned i) const;

  private:
    std::filesystem::path dir_;
};

}  // namespace plugd
