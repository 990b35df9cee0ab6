// private_dir: mkdtemp and cleanup.
#include "plugins/private_dir.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace plugd {

private_dir::private_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string{tmp && *tmp ? tmp : "/tmp"} + "/plugd.XXXXXX";
    if (!::mkdtemp(pattern.data())) {
        throw std::runtime_error("cannot create a private folder for plugin copies (" + pattern +
                                 "): " + std::strerror(errno) +
                                 "; set TMPDIR to a writable folder");
    }
    path_ = pattern;
}

private_dir::~private_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

}  // namespace plugd
