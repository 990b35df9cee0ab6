// file_watch: inotify on the watched files' folders and every folder above them, debounced
// until the files are quiet.
#include "control/file_watch.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.hpp"

namespace plugd {
namespace {

// A file's own changes: written, replaced, created, deleted.
constexpr std::uint32_t file_events =
    IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB;
// A folder on the path: one of its entries replaced, or the folder itself moved or deleted.
constexpr std::uint32_t path_events =
    IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;

// How long ago `file` was last modified; a missing file counts as quiet.
std::chrono::milliseconds age(const std::filesystem::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return std::chrono::milliseconds::max();
    const auto modified = std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds{st.st_mtim.tv_sec} +
            std::chrono::nanoseconds{st.st_mtim.tv_nsec})};
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() -
                                                                 modified);
}

}  // namespace

file_watch::file_watch(boost::asio::io_context& io, std::chrono::milliseconds debounce,
                       std::function<void()> on_change)
    : fd_{::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)},
      stream_{io},
      quiet_{io},
      debounce_{debounce},
      on_change_{std::move(on_change)} {
    if (fd_ < 0) {
        throw std::runtime_error(std::string{"--watch: inotify is not available: "} +
                                 std::strerror(errno));
    }
    stream_.assign(fd_);
    read_events();
}

file_watch::~file_watch() {
    close();
}

void file_watch::close() {
    boost::system::error_code ignored;
    quiet_.cancel();
    stream_.close(ignored);
}

void file_watch::watch(std::vector<std::filesystem::path> files) {
    files_.clear();
    for (auto& f : files) {
        if (!f.empty()) files_.push_back(std::filesystem::absolute(f).lexically_normal());
    }
    rewatch();
}

void file_watch::rewatch() {
    for (const auto& [wd, folder] : folders_) ::inotify_rm_watch(fd_, wd);
    folders_.clear();
    // Collect what each folder is watched for first: inotify keeps one watch per inode,
    // so a folder that is both a file's folder and on another file's path gets one mask.
    std::map<std::filesystem::path, watched_folder> wanted;
    // Each file by the path the config gives and, when symbolic links are on the way, by
    // the path they lead to now: an edit at the real location is seen, and so is a link
    // swapped anywhere (a release's `current` link, a Kubernetes ConfigMap's `..data`),
    // since rewatching follows the new target.
    std::vector<std::filesystem::path> paths;
    for (const auto& file : files_) {
        paths.push_back(file);
        std::error_code ec;
        const auto real = std::filesystem::weakly_canonical(file, ec);
        if (!ec && real != file) paths.push_back(real);
    }
    for (const auto& file : paths) {
        wanted[file.parent_path()].files.insert(file.filename());
        for (auto child = file.parent_path(); child.has_relative_path();
             child = child.parent_path()) {
            wanted[child.parent_path()].on_path.insert(child.filename());
        }
    }
    for (auto& [path, folder] : wanted) {
        const std::uint32_t mask =
            (folder.files.empty() ? 0 : file_events) | (folder.on_path.empty() ? 0 : path_events);
        const int wd = ::inotify_add_watch(fd_, path.c_str(), mask | IN_MASK_ADD | IN_ONLYDIR);
        if (wd < 0) {
            // A folder of a watched file that does not exist yet is normal mid-deploy: the
            // folder above it is watched and brings us back here when it appears.
            if (errno != ENOENT && errno != ENOTDIR) {
                log::warn("--watch: cannot watch " + path.string() + ": " + std::strerror(errno));
            }
            continue;
        }
        auto& merged = folders_[wd];  // two paths to one folder (a symlink) share a watch
        merged.files.insert(folder.files.begin(), folder.files.end());
        merged.on_path.insert(folder.on_path.begin(), folder.on_path.end());
    }
}

void file_watch::read_events() {
    stream_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this](const boost::system::error_code& ec) {
                           if (ec) return;
                           bool relevant = false;
                           bool path_changed = false;
                           ssize_t n;
                           while ((n = ::read(fd_, buffer_.data(), buffer_.size())) > 0) {
                               for (ssize_t at = 0; at < n;) {
                                   inotify_event e;
                                   std::memcpy(&e, buffer_.data() + at, sizeof e);
                                   const std::string name =
                                       e.len ? buffer_.data() + at + sizeof e : "";
                                   at += static_cast<ssize_t>(sizeof e + e.len);
                                   if (e.mask & IN_Q_OVERFLOW) {
                                       // Events were lost (the queue filled while a reload ran):
                                       // assume anything changed, path included.
                                       path_changed = true;
                                       continue;
                                   }
                                   auto it = folders_.find(e.wd);
                                   if (it == folders_.end())
                                       continue;  // a watch removed by rewatch()
                                   const auto& folder = it->second;
                                   if (e.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                                       path_changed = true;
                                   } else if (folder.on_path.contains(name)) {
                                       path_changed = true;  // a folder on the way was replaced
                                   } else if (folder.files.contains(name)) {
                                       relevant = true;
                                   }
                               }
                           }
                           if (path_changed) rewatch();
                           if (relevant || path_changed) changed();
                           read_events();
                       });
}

void file_watch::changed() {
    wait_quiet(debounce_);
}

void file_watch::wait_quiet(std::chrono::milliseconds quiet) {
    quiet_.expires_after(quiet);
    quiet_.async_wait([this](const boost::system::error_code& e) {
        if (!e) when_quiet();
    });
}

void file_watch::when_quiet() {
    // Events say that a file changed, not that its writer is done: one that writes in
    // pieces, closing the file after each, may pause between them. Wait until every
    // watched file's last modification is a whole debounce interval old.
    for (const auto& file : files_) {
        const auto since = age(file);
        if (since >= std::chrono::milliseconds{0} && since < debounce_) {
            wait_quiet(debounce_ - since);
            return;
        }
    }
    on_change_();
}

}  // namespace plugd
