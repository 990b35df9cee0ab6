// file_watch: `plugd --watch`: notices edits to server.json and plugin files (inotify).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace plugd {

/// Calls `on_change` once things have been quiet for `debounce` after a change to the
/// config file or to a `.so` in the plugin folder: editors and `cp` write a file in several
/// steps, and one reload per burst is what the user means. Runs on the control thread.
class file_watch {
  public:
    file_watch(boost::asio::io_context& io, std::chrono::milliseconds debounce,
               std::function<void()> on_change);
    ~file_watch();

    /// (Re)watches `config_file` and `plugin_dir`; called again after each reload, since
    /// either may have moved. Logs, and keeps watching the rest, when a folder is missing.
    void watch(const std::filesystem::path& config_file, const std::filesystem::path& plugin_dir);
    void close();

  private:
    void read_events();

    int fd_;
    boost::asio::posix::stream_descriptor stream_;
    boost::asio::steady_timer quiet_;
    std::chrono::milliseconds debounce_;
    std::function<void()> on_change_;
    std::vector<int> watches_;
    std::string config_name_;
    int config_watch_ = -1;
    std::vector<char> buffer_ = std::vector<char>(16384);
};

}  // namespace plugd
