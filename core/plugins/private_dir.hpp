// private_dir: a folder only this process uses, removed with everything in it at exit.
#pragma once

#include <filesystem>

namespace plugd {

/// Where plugin versions get their private copies (see plugin_version). Created mode 0700
/// under $TMPDIR (or /tmp); each copy is unlinked as soon as it is mapped, so a crash
/// leaves at most an empty folder behind.
class private_dir {
  public:
    private_dir();
    ~private_dir();
    private_dir(const private_dir&) = delete;
    private_dir& operator=(const private_dir&) = delete;
    const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
};

}  // namespace plugd
