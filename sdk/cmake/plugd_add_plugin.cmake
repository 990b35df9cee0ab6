# plugd's CMake helpers: plugd_add_plugin() builds a plugin, plugd_add_plugin_test() its
# test program.
#
# plugd_add_plugin(<name> <source>...): builds a plugd plugin, <name>.so.
#
# The flags are not optional: they are what lets plugd unload and replace the plugin.
#   -fvisibility=hidden      only what PLUGD_PLUGIN exports is visible
#   -fno-gnu-unique          Asio's inline statics would otherwise be STB_GNU_UNIQUE, which
#                            glibc never unloads: every reload would leak a copy
#   no "lib" prefix          server.json names it by its plain name ("file": "<name>")
#   plugd --seal after link  writes a hash of the file into it, so plugd refuses a copy that
#                            is half old, half new build (a file rewritten in place)
#   C++20, exactly           the standard is part of the ABI plugd checks (`cxx` in its
#                            fingerprint): a project-wide CMAKE_CXX_STANDARD 23 must not
#                            build a plugin this plugd refuses
#   -Woverloaded-virtual -Wsuggest-override   a handle() or serve() with another signature
#                            than plugd::handler's hides it instead of overriding it, which
#                            compiles silently otherwise (plugd then refuses the plugin)
# Set PLUGD_PLUGIN_OUTPUT_DIRECTORY to choose where the .so goes.
function(plugd_add_plugin name)
    if(ARGC LESS 2)
        message(FATAL_ERROR "plugd_add_plugin(${name}): give at least one source file")
    endif()
    add_library(${name} MODULE ${ARGN})
    target_link_libraries(${name} PRIVATE plugd::sdk)
    target_compile_options(${name} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>
        $<$<CXX_COMPILER_ID:GNU,Clang>:-Woverloaded-virtual -Wsuggest-override>)
    set_target_properties(${name} PROPERTIES
        CXX_STANDARD 20
        CXX_STANDARD_REQUIRED ON
        PREFIX ""
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    # The installed plugd (plugd::plugd) or, inside plugd's own tree, the one being built.
    if(TARGET plugd::plugd)
        set(sealer plugd::plugd)
    elseif(TARGET plugd)
        set(sealer plugd)
        add_dependencies(${name} plugd)
    endif()
    if(DEFINED sealer)
        add_custom_command(TARGET ${name} POST_BUILD
            COMMAND ${sealer} --seal $<TARGET_FILE:${name}>
            VERBATIM)
    endif()
    if(DEFINED PLUGD_PLUGIN_OUTPUT_DIRECTORY)
        set_target_properties(${name} PROPERTIES
            LIBRARY_OUTPUT_DIRECTORY "${PLUGD_PLUGIN_OUTPUT_DIRECTORY}")
    endif()
endfunction()

# plugd_add_plugin_test(<plugin> <source>...): the test program of the plugin target
# <plugin>, through plugd's test harness (plugd::testing, <plugd/testing.hpp>): target
# <plugin>_test, compiled with PLUGIN_FILE set to the built .so's path, built after the
# plugin, and registered with CTest as test <plugin> (call enable_testing() first). The
# harness works with any test framework: link yours to <plugin>_test.
function(plugd_add_plugin_test plugin)
    if(ARGC LESS 2)
        message(FATAL_ERROR "plugd_add_plugin_test(${plugin}): give at least one source file")
    endif()
    if(NOT TARGET ${plugin})
        message(FATAL_ERROR "plugd_add_plugin_test(${plugin}): no target ${plugin}; call "
                            "plugd_add_plugin(${plugin} ...) before it")
    endif()
    add_executable(${plugin}_test ${ARGN})
    target_link_libraries(${plugin}_test PRIVATE plugd::testing)
    target_compile_definitions(${plugin}_test PRIVATE PLUGIN_FILE="$<TARGET_FILE:${plugin}>")
    add_dependencies(${plugin}_test ${plugin})
    add_test(NAME ${plugin} COMMAND ${plugin}_test)
endfunction()
