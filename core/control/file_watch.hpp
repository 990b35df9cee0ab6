// file_watch: `plugd --watch`: notices edits to server.json and the plugin files it names.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace plugd {

/// Calls `on_change` once the watched files have been quiet for `debounce` after a change:
/// editors, `cp` and slow writers change a file in several steps, and one reload per burst
/// is what the user means. Runs on the control thread.
///
/// Files are watched by path, not by inode: a release that swaps a folder (`mv plugins
/// plugins.old && mv plugins.new plugins`) or a symbolic link on the way is noticed, and
/// the watches follow the path to the new folder. For that, every folder from a file up to
/// the root is watched for its one entry on the path, along the path as given and along
/// the path its symbolic links lead to now.
class file_watch {
  public:
    file_watch(boost::asio::io_context& io, std::chrono::milliseconds debounce,
               std::function<void()> on_change);
    ~file_watch();

    /// (Re)watches `files` (the config file and the plugin files it names); called again
    /// after each reload, since the set may change. Logs, and keeps watching the rest, when
    /// a folder cannot be watched.
    void watch(std::vector<std::filesystem::path> files);
    void close();

  private:
    /// What one inotify watch (one folder) stands for.
    struct watched_folder {
        std::set<std::string> files;    ///< watched files in it, by name
        std::set<std::string> on_path;  ///< entries leading down to a watched file's folder
    };

    void rewatch();
    void read_events();
    void changed();
    void wait_quiet(std::chrono::milliseconds quiet);
    void when_quiet();

    int fd_;
    boost::asio::posix::stream_descriptor stream_;
    boost::asio::steady_timer quiet_;
    std::chrono::milliseconds debounce_;
    std::function<void()> on_change_;
    std::vector<std::filesystem::path> files_;
    std::map<int, watched_folder> folders_;  ///< by watch descriptor
    std::vector<char> buffer_ = std::vector<char>(16384);
};

}  // namespace plugd
