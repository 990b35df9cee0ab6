# Fails when a doctest test case name holds a ';'. doctest_discover_tests registers names as
# a CMake list, so such a name becomes two CTest tests whose filters match no test case:
# both "pass" without running anything. Run with -DTEST_BINARIES="a|b" (paths, '|'-separated).
string(REPLACE "|" ";" binaries "${TEST_BINARIES}")
foreach(binary IN LISTS binaries)
    execute_process(COMMAND "${binary}" --list-test-cases --no-version
        OUTPUT_VARIABLE names RESULT_VARIABLE status)
    if(NOT status EQUAL 0)
        message(FATAL_ERROR "${binary} --list-test-cases failed (${status})")
    endif()
    # Each name is one line; a ';' left in the text is one inside a name.
    string(FIND "${names}" ";" at)
    if(NOT at EQUAL -1)
        string(SUBSTRING "${names}" 0 ${at} before)
        string(REGEX REPLACE ".*\n" "" start "${before}")
        message(FATAL_ERROR "${binary}: a test case name holds ';' (\"${start};...\"): "
            "CTest would split it and run nothing; use a comma instead")
    endif()
endforeach()
