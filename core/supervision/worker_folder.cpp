// worker_folder: the workers' folder, made afresh for their user; the master folder's check.
#include "supervision/worker_folder.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace plugd {
namespace {

namespace fs = std::filesystem;

std::string mode_text(const struct stat& st) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return text;
}

bool in_groups(gid_t gid, const user_account& user) {
    std::vector<gid_t> groups(32);
    int n = static_cast<int>(groups.size());
    while (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &n) < 0) {
        if (n <= static_cast<int>(groups.size())) return gid == user.gid;  // cannot tell
        groups.resize(static_cast<std::size_t>(n));
    }
    return std::find(groups.begin(), groups.begin() + n, gid) != groups.begin() + n;
}

// Whether `user` has the permission the bits stand for (owner's, group's, others'), as the
// kernel decides it from the mode (ACLs aside).
bool may(const struct stat& st, const user_account& user, mode_t owner, mode_t group,
         mode_t others) {
    if (st.st_uid == user.uid) return st.st_mode & owner;
    if (in_groups(st.st_gid, user)) return st.st_mode & group;
    return st.st_mode & others;
}

// A folder an earlier master left (it was killed): its entries are unlinked one by one,
// never followed, since the workers' user owned it.
void remove_stale(const fs::path& dir) {
    std::error_code ec;
    if (fs::is_directory(fs::symlink_status(dir, ec))) {
        for (auto it = fs::directory_iterator{dir, ec}; !ec && it != fs::directory_iterator{};
             it.increment(ec)) {
            std::error_code ignored;
            fs::remove(it->path(), ignored);  // a file or a link; a folder only if empty
        }
    }
    fs::remove(dir, ec);
    if (fs::exists(fs::symlink_status(dir, ec))) {
        throw config_error(dir.string() +
                           ": cannot remove what an earlier plugd left there; remove it and "
                           "start plugd again");
    }
}

}  // namespace

void check_master_folder(const server_config& cfg, const user_account& user) {
    if (user.uid == 0) return;
    const std::string where = cfg.source.string() + ": /pid_file: ";
    std::error_code ec;
    const fs::path folder = fs::canonical(cfg.pid_file.parent_path(), ec);
    if (ec) {
        throw config_error(where + cfg.pid_file.parent_path().string() + ": " + ec.message() +
                           "; set /pid_file to a file in an existing folder");
    }
    struct stat st {};
    if (::stat(folder.c_str(), &st) == 0 && may(st, user, S_IWUSR, S_IWGRP, S_IWOTH)) {
        throw config_error(
            where + "the folder " + folder.string() + " is writable by user \"" + user.name +
            "\" (owner uid " + std::to_string(st.st_uid) + ", mode " + mode_text(st) +
            "), whom the workers run as: the master, which stays root, keeps its pid file and "
            "its copies of each generation there, and that user could swap them; make it "
            "root's: chown root: " +
            folder.string() + " && chmod go-w " + folder.string() +
            ", or set /pid_file in such a folder");
    }
    for (fs::path p = folder;; p = p.parent_path()) {
        if (::stat(p.c_str(), &st) == 0 && !may(st, user, S_IXUSR, S_IXGRP, S_IXOTH)) {
            throw config_error(where + "user \"" + user.name + "\", whom the workers run as, " +
                               "cannot reach into " + p.string() + " (owner uid " +
                               std::to_string(st.st_uid) + ", mode " + mode_text(st) +
                               "): the workers read the master's copies of the configuration "
                               "and plugins below " +
                               folder.string() + "; allow it with: chmod o+x " + p.string() +
                               ", or set /pid_file in a folder it can reach");
        }
        if (p == p.root_path()) break;
    }
}

worker_folder::worker_folder(fs::path dir, const std::optional<user_account>& owner)
    : dir_{std::move(dir)} {
    remove_stale(dir_);
    if (::mkdir(dir_.c_str(), 0700) != 0 ||
        (owner && ::chown(dir_.c_str(), owner->uid, owner->gid) != 0)) {
        throw config_error(dir_.string() +
                           ": cannot create the folder the workers write their reload outcomes "
                           "in: " +
                           std::strerror(errno) + "; set /pid_file in a folder plugd can write");
    }
}

worker_folder::~worker_folder() {
    try {
        remove_stale(dir_);
    } catch (const std::exception&) {
        // Left for the next master, which removes it or says why it cannot.
    }
}

fs::path worker_folder::status_file(unsigned i) const {
    return dir_ / ("worker-" + std::to_string(i));
}

fs::path worker_folder::crash_note(unsigned i) const {
    return dir_ / ("worker-" + std::to_string(i) + ".crash");
}

namespace {

// Worker `i`'s crash note, "plugin\tgeneration\n", read as crashed_plugin() says.
std::string read_note(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return {};
    struct stat st {};
    char text[256];
    ssize_t n = 0;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = ::read(fd, text, sizeof text);
    ::close(fd);
    return {text, static_cast<std::size_t>(std::max<ssize_t>(n, 0))};
}

}  // namespace

std::string worker_folder::crashed_plugin(unsigned i) const {
    const std::string note = read_note(crash_note(i));
    const auto tab = note.find('\t');
    return tab == std::string::npos ? std::string{} : note.substr(0, tab);
}

std::uint64_t worker_folder::crashed_generation(unsigned i) const {
    const std::string note = read_note(crash_note(i));
    const auto tab = note.find('\t');
    if (tab == std::string::npos) return 0;
    return std::strtoull(note.c_str() + tab + 1, nullptr, 10);
}

}  // namespace plugd
