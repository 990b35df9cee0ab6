# Installs plugd into a fresh prefix, builds every example against the installed package
# only (find_package(plugd)) into WORK_DIR/<example>/ and runs its own tests (through the
# installed plugd::testing harness), checks that plugd loads hello with -t, and does what a
# new user does with `plugd new-plugin`: writes a project into WORK_DIR/scaffold, builds
# it, runs its test, and checks its server.json with -t. The example tests then serve what
# this built (a CTest fixture).
# Run by CTest with -DBUILD_DIR, -DSOURCE_DIR, -DWORK_DIR and -DEXAMPLES (';'-separated).
file(REMOVE_RECURSE "${WORK_DIR}")
function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
    endif()
    set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
string(REPLACE "|" ";" examples "${EXAMPLES}")
foreach(example IN LISTS examples)
    run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/${example}" -B "${WORK_DIR}/${example}"
        -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
    run(${CMAKE_COMMAND} --build "${WORK_DIR}/${example}")
    run(${CMAKE_CTEST_COMMAND} --test-dir "${WORK_DIR}/${example}" --output-on-failure
        --no-tests=error)
endforeach()
file(WRITE "${WORK_DIR}/server.json" "{ \"plugin_dir\": \"hello\", \"pid_file\": \"hello.pid\", \"plugins\": { \"hello\": { \"file\": \"hello\", \"config\": { \"greeting\": \"Howdy\" } } }, \"listeners\": [ { \"name\": \"main\", \"port\": 0, \"plugin\": \"hello\" } ] }")
run("${WORK_DIR}/prefix/bin/plugd" -t -c "${WORK_DIR}/server.json")
if(NOT last_output MATCHES "is valid and its 1 plugin instance")
    message(FATAL_ERROR "unexpected plugd -t output: ${last_output}")
endif()

# plugd new-plugin, as the README tells a new user: the commands it prints, run as printed.
set(plugd "${WORK_DIR}/prefix/bin/plugd")
run("${plugd}" new-plugin scaffold "${WORK_DIR}/scaffold")
if(NOT last_output MATCHES "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix\n")
    message(FATAL_ERROR "new-plugin did not name the install prefix: ${last_output}")
endif()
execute_process(COMMAND "${plugd}" new-plugin scaffold "${WORK_DIR}/scaffold"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR NOT out MATCHES "already exists; plugd new-plugin never overwrites")
    message(FATAL_ERROR "new-plugin over an existing folder: ${rc} ${out}")
endif()
execute_process(COMMAND "${plugd}" new-plugin class "${WORK_DIR}/class"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR NOT out MATCHES "a C\\+\\+ keyword" OR EXISTS "${WORK_DIR}/class")
    message(FATAL_ERROR "new-plugin with a reserved name: ${rc} ${out}")
endif()
run("${plugd}" new-plugin other "${WORK_DIR}/other/")  # a folder as shell completion types it
if(NOT EXISTS "${WORK_DIR}/other/other.cpp")
    message(FATAL_ERROR "new-plugin NAME DIR/ wrote no project into DIR")
endif()
# A project-wide newer standard: plugd_add_plugin still builds the plugin as C++20, the
# standard in plugd's ABI fingerprint, so the -t below loads it.
run(${CMAKE_COMMAND} -S "${WORK_DIR}/scaffold" -B "${WORK_DIR}/scaffold/build"
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_CXX_STANDARD=23)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/scaffold/build")
run(${CMAKE_CTEST_COMMAND} --test-dir "${WORK_DIR}/scaffold/build" --output-on-failure
    --no-tests=error)
if(NOT last_output MATCHES "100% tests passed")
    message(FATAL_ERROR "the new project's tests: ${last_output}")
endif()
run("${plugd}" -t -c "${WORK_DIR}/scaffold/server.json")
if(NOT last_output MATCHES "is valid and its 1 plugin instance")
    message(FATAL_ERROR "unexpected plugd -t output for the new project: ${last_output}")
endif()
