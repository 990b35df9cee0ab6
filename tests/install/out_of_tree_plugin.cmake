# Installs plugd into a fresh prefix, builds every example against the installed package
# only (find_package(plugd)) into WORK_DIR/<example>/, and checks that plugd loads hello
# with -t. The example tests then serve what it built (a CTest fixture).
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
endforeach()
file(WRITE "${WORK_DIR}/server.json" "{ \"plugin_dir\": \"hello\", \"pid_file\": \"hello.pid\", \"plugins\": { \"hello\": { \"file\": \"hello\", \"config\": { \"greeting\": \"Howdy\" } } }, \"listeners\": [ { \"name\": \"main\", \"port\": 0, \"plugin\": \"hello\" } ] }")
run("${WORK_DIR}/prefix/bin/plugd" -t -c "${WORK_DIR}/server.json")
if(NOT last_output MATCHES "is valid and its 1 plugin instance")
    message(FATAL_ERROR "unexpected plugd -t output: ${last_output}")
endif()
