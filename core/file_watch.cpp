// file_watch: inotify on the config's folder and the plugin folder, debounced.
#include "file_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.hpp"

namespace plugd {

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

void file_watch::watch(const std::filesystem::path& config_file,
                       const std::filesystem::path& plugin_dir) {
    for (int w : watches_) ::inotify_rm_watch(fd_, w);
    watches_.clear();
    constexpr auto events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE;
    auto add = [&](const std::filesystem::path& dir) {
        const int w = ::inotify_add_watch(fd_, dir.c_str(), events);
        if (w < 0) {
            log::warn("--watch: cannot watch " + dir.string() + ": " + std::strerror(errno));
        } else {
            watches_.push_back(w);
        }
        return w;
    };
    config_watch_ = -1;
    config_name_.clear();
    if (!config_file.empty()) {
        config_name_ = config_file.filename();
        config_watch_ = add(config_file.parent_path());
    }
    const int plugins = add(plugin_dir);
    // One folder for both: inotify returns the same watch for it.
    if (plugins == config_watch_) config_watch_ = plugins;
}

void file_watch::read_events() {
    stream_.async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [this](const boost::system::error_code& ec) {
            if (ec) return;
            bool relevant = false;
            ssize_t n;
            while ((n = ::read(fd_, buffer_.data(), buffer_.size())) > 0) {
                for (ssize_t at = 0; at < n;) {
                    inotify_event e;
                    std::memcpy(&e, buffer_.data() + at, sizeof e);
                    const std::string name = e.len ? buffer_.data() + at + sizeof e : "";
                    at += static_cast<ssize_t>(sizeof e + e.len);
                    const bool is_config = e.wd == config_watch_ && name == config_name_;
                    const bool is_plugin = name.size() > 3 && name.ends_with(".so");
                    relevant = relevant || is_config || is_plugin;
                }
            }
            if (relevant) {
                quiet_.expires_after(debounce_);
                quiet_.async_wait([this](const boost::system::error_code& e) {
                    if (!e) on_change_();
                });
            }
            read_events();
        });
}

}  // namespace plugd
