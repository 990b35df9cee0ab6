// ABI fingerprints: read from the file without loading it, compared part by part.
#include <doctest/doctest.h>

#include <elf.h>

#include <fstream>
#include <sstream>
#include <string>

#define BOOST_DLL_USE_STD_FS 1
#include <boost/dll/library_info.hpp>
#include <boost/version.hpp>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include <plugd/plugin.hpp>

#include "plugins/abi_fingerprint.hpp"
#include "plugins/elf_section.hpp"
#include "plugins/plugin_seal.hpp"

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in{path, std::ios::binary};
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string fingerprint_of(const std::string& path) {
    const std::string image = read_file(path);
    auto section = plugd::elf_section(image, ".plugd_abi");
    REQUIRE(section.has_value());
    std::string text{*section};
    while (!text.empty() && text.back() == '\0') text.pop_back();
    return text;
}

// Whether a symbol belongs to the standard library or Boost (vague-linkage statics and
// type_info their headers keep visible on purpose) rather than to the plugin's own code.
bool from_std_or_boost(const std::string& mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled{
        abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free};
    if (status != 0) return false;
    std::string_view name{demangled.get()};
    for (std::string_view prefix :
         {"typeinfo name for ", "typeinfo for ", "vtable for ", "guard variable for ", "void "}) {
        if (name.starts_with(prefix)) name.remove_prefix(prefix.size());
    }
    return name.starts_with("std::") || name.starts_with("boost::");
}

}  // namespace

TEST_CASE("a plugin built with the SDK carries the core's fingerprint") {
    CHECK(fingerprint_of(PLUGD_BUNDLED_PLUGIN_DIR "/greeting.so") == plugd::core_abi_fingerprint());
    CHECK_FALSE(plugd::abi_mismatch(fingerprint_of(PLUGD_TEST_PLUGIN_DIR "/echo.so"),
                                    plugd::core_abi_fingerprint()));
}

TEST_CASE("a mismatch names the part that differs and both values") {
    const auto diff = plugd::abi_mismatch(fingerprint_of(PLUGD_TEST_PLUGIN_DIR "/wrong_abi.so"),
                                          plugd::core_abi_fingerprint());
    REQUIRE(diff.has_value());
    CHECK(*diff == "boost: plugin 107400, plugd " + std::to_string(BOOST_VERSION));
}

TEST_CASE("mismatches in several parts, missing and extra parts are all reported") {
    const auto diff = plugd::abi_mismatch("sdk=2;compiler=gcc-13.1;extra=1",
                                          "sdk=1;compiler=gcc-12.2;cxx=202002");
    REQUIRE(diff.has_value());
    CHECK(*diff ==
          "compiler: plugin gcc-13.1, plugd gcc-12.2; cxx: plugin (none), plugd 202002; "
          "sdk: plugin 2, plugd 1; extra: plugin 1, plugd (none)");
}

TEST_CASE("an older SDK minor is compatible, a newer one is named, another major is not") {
    const std::string rest = ";compiler=gcc-12.2;cxx=202002";
    CHECK_FALSE(plugd::abi_mismatch("sdk=1.0" + rest, "sdk=1.1" + rest));
    CHECK_FALSE(plugd::abi_mismatch("sdk=1" + rest, "sdk=1.1" + rest));  // from before minors
    CHECK_FALSE(plugd::abi_mismatch("sdk=1.1" + rest, "sdk=1.1" + rest));
    CHECK(plugd::abi_mismatch("sdk=1.2" + rest, "sdk=1.1" + rest) ==
          "sdk: plugin 1.2, plugd 1.1: the plugin needs SDK 1.2 facilities this plugd lacks; "
          "upgrade plugd to one with SDK 1.2 or newer");
    CHECK(plugd::abi_mismatch("sdk=2.0" + rest, "sdk=1.1" + rest) == "sdk: plugin 2.0, plugd 1.1");
    CHECK(plugd::abi_mismatch("sdk=x" + rest, "sdk=1.1" + rest) == "sdk: plugin x, plugd 1.1");
}

TEST_CASE("a file that is not an ELF shared library is refused with the reason") {
    CHECK_THROWS_WITH_AS(plugd::elf_section("not a library at all", ".plugd_abi"),
                         "not an ELF file (no ELF magic number at its start)",
                         plugd::not_a_shared_library);
    CHECK_THROWS_AS(plugd::elf_section(read_file(PLUGD_BINARY).substr(0, 200), ".plugd_abi"),
                    plugd::not_a_shared_library);
    // A truncated library: the section table lies past the end.
    const std::string image = read_file(PLUGD_TEST_PLUGIN_DIR "/echo.so");
    CHECK_THROWS_AS(plugd::elf_section(image.substr(0, image.size() / 2), ".plugd_abi"),
                    plugd::not_a_shared_library);
}

TEST_CASE("a library whose headers promise more than the file holds is refused as incomplete") {
    const std::string image = read_file(PLUGD_TEST_PLUGIN_DIR "/echo.so");
    Elf64_Ehdr header;
    std::memcpy(&header, image.data(), sizeof header);
    const auto refusal = [](const std::string& bytes) -> std::string {
        try {
            plugd::elf_section(bytes, ".plugd_abi");
        } catch (const plugd::not_a_shared_library& e) {
            return e.what();
        }
        return "(accepted)";
    };
    SUBCASE("a section runs past the end") {
        std::string cut = image;
        Elf64_Shdr text;
        REQUIRE(header.e_shstrndx != 1);  // not the name table: that one is checked first
        const auto at = header.e_shoff + 1 * sizeof(Elf64_Shdr);
        std::memcpy(&text, cut.data() + at, sizeof text);
        text.sh_type = SHT_PROGBITS;
        text.sh_size = cut.size();  // as if the rest were still to be written
        std::memcpy(cut.data() + at, &text, sizeof text);
        CHECK(refusal(cut).find("incomplete ELF file: section 1 ends at byte") == 0);
    }
    SUBCASE("a segment runs past the end") {
        std::string cut = image;
        Elf64_Phdr segment;
        std::memcpy(&segment, cut.data() + header.e_phoff, sizeof segment);
        segment.p_filesz = cut.size();
        segment.p_offset = 1;
        std::memcpy(cut.data() + header.e_phoff, &segment, sizeof segment);
        CHECK(refusal(cut) == "incomplete ELF file: segment 0 ends at byte " +
                                  std::to_string(cut.size() + 1) + ", but the file has " +
                                  std::to_string(cut.size()) +
                                  " bytes; is it still being written?");
    }
    CHECK(plugd::elf_section(image, ".plugd_abi").has_value());
}

TEST_CASE("a plugin exports PLUGD_PLUGIN's symbols and Boost's visible ones, nothing of its own") {
    for (const char* plugin :
         {PLUGD_BUNDLED_PLUGIN_DIR "/greeting.so", PLUGD_TEST_PLUGIN_DIR "/echo.so"}) {
        boost::dll::library_info info{std::filesystem::path{plugin}};
        std::set<std::string> ours;
        for (const auto& symbol : info.symbols()) {
            // ASan marks each exported variable with an ODR indicator of its own.
            if (symbol.starts_with("__odr_asan.")) continue;
            if (!from_std_or_boost(symbol)) ours.insert(symbol);
        }
        const std::set<std::string> exported_by_macro{"plugd_abi_fingerprint", "plugd_make_handler",
                                                      "plugd_entry_points"};
        CHECK_MESSAGE(ours == exported_by_macro, plugin);
    }
}

TEST_CASE("a library without the section has no fingerprint") {
    const std::string image = read_file(PLUGD_BUNDLED_PLUGIN_DIR "/greeting.so");
    CHECK_FALSE(plugd::elf_section(image, ".no_such_section").has_value());
}

TEST_CASE("a sealed plugin is accepted, pieces of two builds are refused, an unsealed one passes") {
    const std::string v1 = read_file(PLUGD_TEST_PLUGIN_DIR "/echo.so");
    const std::string v2 = read_file(PLUGD_TEST_PLUGIN_DIR "/echo_v2.so");
    CHECK_FALSE(plugd::seal_mismatch(v1).has_value());
    CHECK_FALSE(plugd::seal_mismatch(v2).has_value());
    // v2 written over v1 in place, stopped after the first page (its headers and build id):
    // the rest, code and data included, is still v1's.
    std::string spliced = v1;
    spliced.replace(0, 4096, v2.substr(0, 4096));
    const auto why = plugd::seal_mismatch(spliced);
    REQUIRE(why.has_value());
    CHECK(why->find("does not match its seal") != std::string::npos);
    // The other way round: the old first page, the new rest.
    std::string tail = v2;
    tail.replace(0, 4096, v1.substr(0, 4096));
    CHECK(plugd::seal_mismatch(tail).has_value());
    // One flipped bit in the code.
    const auto text = plugd::elf_section(v1, ".text");
    REQUIRE(text.has_value());
    std::string flipped = v1;
    flipped[static_cast<std::size_t>(text->data() - v1.data()) + text->size() / 2] ^= 1;
    CHECK(plugd::seal_mismatch(flipped).has_value());
    // Without a seal (not built by plugd_add_plugin) there is nothing to compare.
    CHECK_FALSE(
        plugd::seal_mismatch(read_file(PLUGD_TEST_PLUGIN_DIR "/no_factory.so")).has_value());
}

TEST_CASE("a sealed plugin still matches its seal after strip removes its symbols") {
    const std::string stripped = std::string{PLUGD_TEST_PLUGIN_DIR} + "/echo.stripped.so";
    REQUIRE(std::system(("strip -o " + stripped + " " PLUGD_TEST_PLUGIN_DIR "/echo.so").c_str()) ==
            0);
    const std::string image = read_file(stripped);
    std::remove(stripped.c_str());
    CHECK(image.size() < read_file(PLUGD_TEST_PLUGIN_DIR "/echo.so").size());
    CHECK_FALSE(plugd::seal_mismatch(image).has_value());
}

TEST_CASE("a C++ standard mismatch names the -std flags that differ and the one to use") {
    const std::string rest = "sdk=1.3;compiler=gcc-12.2;cxx=";
    const auto diff = plugd::abi_mismatch(rest + "202100L", rest + "202002L");
    REQUIRE(diff.has_value());
    CHECK(*diff ==
          "cxx: plugin 202100L, plugd 202002L: the plugin was compiled with -std=c++23, plugd "
          "with -std=c++20; build the plugin with -std=c++20 (plugd_add_plugin() sets it)");
    CHECK(plugd::abi_mismatch(rest + "201703L", rest + "202002L")->find("-std=c++17") !=
          std::string::npos);
}

namespace entry_point_shapes {

using plugd::reply;
using plugd::request;
using plugd::task;

struct overrides final : plugd::handler {
    task<void> handle(request, reply&) override { co_return; }
};
struct overrides_noexcept final : plugd::handler {
    task<void> handle(request, reply&) noexcept override { co_return; }
};
struct hides final : plugd::handler {
    task<void> handle(request, reply&) const { co_return; }  // another signature
};
struct inherits final : plugd::handler {};
struct via_base : plugd::handler {
    task<void> serve(plugd::connection&) override { co_return; }
};
struct derived final : via_base {};

}  // namespace entry_point_shapes

TEST_CASE("PLUGD_PLUGIN records which entry points a handler type overrides") {
    namespace d = plugd::detail;
    using namespace entry_point_shapes;
    CHECK(d::entry_points<overrides>() == d::answers_requests);
    CHECK(d::entry_points<overrides_noexcept>() == d::answers_requests);
    CHECK(d::entry_points<hides>() == 0);
    CHECK(d::entry_points<inherits>() == 0);
    CHECK(d::entry_points<derived>() == d::serves_connections);
}
