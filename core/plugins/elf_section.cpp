// Reads a named section out of an ELF shared object held in memory, bounds-checked.
#include "plugins/elf_section.hpp"

#include <elf.h>

#include <cstring>

namespace plugd {
namespace {

template <typename T>
T read_at(std::string_view image, std::uint64_t offset, const char* what) {
    if (offset > image.size() || image.size() - offset < sizeof(T)) {
        throw not_a_shared_library(std::string{"truncated ELF file ("} + what +
                                   " lies past the end of the file)");
    }
    T value;
    std::memcpy(&value, image.data() + offset, sizeof(T));
    return value;
}

}  // namespace

std::optional<std::string_view> elf_section(std::string_view image, std::string_view name) {
    if (image.size() < SELFMAG || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        throw not_a_shared_library("not an ELF file (no ELF magic number at its start)");
    }
    const auto header = read_at<Elf64_Ehdr>(image, 0, "the ELF header");
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
        throw not_a_shared_library("not a 64-bit little-endian ELF object");
    }
    if (header.e_type != ET_DYN) {
        throw not_a_shared_library("an ELF file, but not a shared library (e_type " +
                                   std::to_string(header.e_type) + ")");
    }
    if (header.e_machine != EM_X86_64 && header.e_machine != EM_AARCH64) {
        throw not_a_shared_library("a shared library for another machine (e_machine " +
                                   std::to_string(header.e_machine) + ")");
    }
    if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shstrndx >= header.e_shnum) {
        throw not_a_shared_library("corrupt ELF section header table");
    }
    auto section = [&](std::uint64_t index) {
        return read_at<Elf64_Shdr>(image, header.e_shoff + index * sizeof(Elf64_Shdr),
                                   "a section header");
    };
    const auto names = section(header.e_shstrndx);
    if (names.sh_offset > image.size() || image.size() - names.sh_offset < names.sh_size) {
        throw not_a_shared_library("corrupt ELF section name table");
    }
    const std::string_view name_table = image.substr(names.sh_offset, names.sh_size);
    // A whole file, not only the parts we read: a library still being written (or cut
    // short) has headers that promise more than the file holds. dlopen would map past its
    // end and fault on first use, so it never gets that far.
    const auto incomplete = [&](const std::string& part, std::uint64_t ends) {
        return not_a_shared_library("incomplete ELF file: " + part + " ends at byte " +
                                    std::to_string(ends) + ", but the file has " +
                                    std::to_string(image.size()) +
                                    " bytes; is it still being written?");
    };
    if (header.e_phentsize != sizeof(Elf64_Phdr) && header.e_phnum != 0) {
        throw not_a_shared_library("corrupt ELF program header table");
    }
    for (std::uint64_t i = 0; i < header.e_phnum; ++i) {
        const auto p =
            read_at<Elf64_Phdr>(image, header.e_phoff + i * sizeof(Elf64_Phdr), "a program header");
        if (p.p_offset > image.size() || image.size() - p.p_offset < p.p_filesz) {
            throw incomplete("segment " + std::to_string(i), p.p_offset + p.p_filesz);
        }
    }
    for (std::uint64_t i = 0; i < header.e_shnum; ++i) {
        const auto s = section(i);
        if (s.sh_type == SHT_NOBITS) continue;
        if (s.sh_offset > image.size() || image.size() - s.sh_offset < s.sh_size) {
            throw incomplete("section " + std::to_string(i), s.sh_offset + s.sh_size);
        }
    }
    for (std::uint64_t i = 0; i < header.e_shnum; ++i) {
        const auto s = section(i);
        if (s.sh_name >= name_table.size()) continue;
        const std::string_view rest = name_table.substr(s.sh_name);
        if (rest.substr(0, rest.find('\0')) != name) continue;
        if (s.sh_type == SHT_NOBITS) return std::string_view{};
        if (s.sh_offset > image.size() || image.size() - s.sh_offset < s.sh_size) {
            throw not_a_shared_library("section " + std::string{name} +
                                       " lies past the end of the file");
        }
        return image.substr(s.sh_offset, s.sh_size);
    }
    return std::nullopt;
}

}  // namespace plugd
