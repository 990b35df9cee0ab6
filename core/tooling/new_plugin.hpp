// new_plugin: `plugd new-plugin NAME [DIR]`, a ready-to-build plugin project.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

namespace plugd {

/// Writes a new out-of-tree plugin project named `name` into `dir` (which must not exist:
/// nothing is ever overwritten): CMakeLists.txt, the handler, its harness test, a
/// server.json serving it over HTTP on a port free now, a README with the commands, and a
/// .gitignore. `prefix` is where plugd is installed (empty when this plugd runs from a
/// build tree: the README then says to install it first). Prints the next commands to
/// `out`. Throws std::runtime_error saying what is wrong and what to do.
void write_new_plugin(const std::string& name, const std::filesystem::path& dir,
                      const std::filesystem::path& prefix, std::ostream& out);

}  // namespace plugd
