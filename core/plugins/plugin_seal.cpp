// plugin_seal: the `.plugd_seal` section PLUGD_PLUGIN reserves, filled after linking with a
// hash of the whole file as it is with the section still unsealed.
#include "plugins/plugin_seal.hpp"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <plugd/version.hpp>

#include "plugins/elf_section.hpp"

namespace plugd {
namespace {

constexpr std::string_view seal_section = ".plugd_seal";
constexpr std::string_view sealed_prefix = "plugd-seal:";

// The section as PLUGD_PLUGIN emits it: the unsealed text, then zeros.
std::string unsealed() {
    std::string text(PLUGD_SEAL_SIZE, '\0');
    std::memcpy(text.data(), PLUGD_UNSEALED, std::strlen(PLUGD_UNSEALED));
    return text;
}

// The hash of what the dynamic loader maps (every PT_LOAD segment's bytes from the file),
// with the seal section at `at` read as unsealed and the ELF header's section-table fields
// read as zero. Sections that are not loaded (symbols, debug information) and the section
// table are left out: `strip` and install tools remove or move them without changing the
// code, and a sealed plugin must survive that.
std::uint64_t sealed_hash(std::string_view image, std::size_t at) {
    std::string loaded{image};
    std::memcpy(loaded.data() + at, unsealed().data(), PLUGD_SEAL_SIZE);
    Elf64_Ehdr header;
    std::memcpy(&header, loaded.data(), sizeof header);
    header.e_shoff = 0;
    header.e_shnum = 0;
    header.e_shstrndx = 0;
    std::memcpy(loaded.data(), &header, sizeof header);
    // elf_section() has checked that the program headers and segments lie in the file.
    std::uint64_t h = fnv1a({});
    for (std::uint64_t i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr segment;
        std::memcpy(&segment, loaded.data() + header.e_phoff + i * sizeof segment, sizeof segment);
        if (segment.p_type != PT_LOAD) continue;
        h = fnv1a(std::string_view{loaded}.substr(segment.p_offset, segment.p_filesz), h);
    }
    return h;
}

std::string seal_text(std::uint64_t hash) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    std::string text(PLUGD_SEAL_SIZE, '\0');
    const std::string shown = std::string{sealed_prefix} + hex;
    std::memcpy(text.data(), shown.data(), shown.size());
    return text;
}

// Where the seal section starts in `image`, if it has one of the right size.
std::optional<std::size_t> seal_offset(std::string_view image) {
    const auto section = elf_section(image, seal_section);
    if (!section || section->size() != PLUGD_SEAL_SIZE) return std::nullopt;
    return static_cast<std::size_t>(section->data() - image.data());
}

}  // namespace

std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h) noexcept {
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::optional<std::string> seal_mismatch(std::string_view image) {
    const auto at = seal_offset(image);
    if (!at) return std::nullopt;
    const std::string_view found = image.substr(*at, PLUGD_SEAL_SIZE);
    if (found == unsealed()) return std::nullopt;
    if (found == seal_text(sealed_hash(image, *at))) return std::nullopt;
    return std::string{
        "the file does not match its seal: its code or data changed after it was built, or it "
        "is pieces of two builds (a file rewritten in place while plugd read it). Deploy a "
        "plugin by writing the new file under another name and renaming it over the old one; "
        "if a tool patched it on purpose after the build, seal it again with plugd --seal FILE"};
}

std::string seal_plugin_file(const std::filesystem::path& file) {
    std::ifstream in{file, std::ios::binary};
    if (!in) {
        throw std::runtime_error(file.string() + ": cannot read: " + std::strerror(errno));
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string image = std::move(bytes).str();
    std::optional<std::size_t> at;
    try {
        at = seal_offset(image);
    } catch (const not_a_shared_library& e) {
        throw std::runtime_error(file.string() + ": not a shared library: " + e.what());
    }
    if (!at) {
        return file.string() + ": no " + std::string{seal_section} +
               " section (no PLUGD_PLUGIN in it?): left unsealed";
    }
    const std::string seal = seal_text(sealed_hash(image, *at));
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    const bool written =
        fd >= 0 && ::pwrite(fd, seal.data(), seal.size(), static_cast<off_t>(*at)) ==
                       static_cast<ssize_t>(seal.size());
    const int error = errno;
    if (fd >= 0) ::close(fd);
    if (!written) {
        throw std::runtime_error(file.string() +
                                 ": cannot write the seal: " + std::strerror(error));
    }
    return file.string() + ": sealed";
}

}  // namespace plugd
