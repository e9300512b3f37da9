# Every fuzz target's corpus, replayed as an ordinary test with whatever
# compiler and sanitizers the build uses (no libFuzzer, no clang needed):
# fuzz-replay-NAME links tests/fuzz/NAME.c with the driver replay.c and
# runs each file of tests/fuzz/corpus/NAME once. Included from
# tests/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/targets.cmake)

foreach(t ${CFS_FUZZ_TARGETS})
  add_executable(fuzz-replay-${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c
    ${CMAKE_CURRENT_LIST_DIR}/fuzz-common.c ${CMAKE_CURRENT_LIST_DIR}/replay.c)
  target_include_directories(fuzz-replay-${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(fuzz-replay-${t} PRIVATE cfs_internal)
  set_target_properties(fuzz-replay-${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME fuzz-replay-${t}
    COMMAND fuzz-replay-${t} ${CMAKE_CURRENT_LIST_DIR}/corpus/${t})
  set_tests_properties(fuzz-replay-${t} PROPERTIES LABELS fuzz
    ENVIRONMENT "TMPDIR=${CMAKE_BINARY_DIR}/tests/tmp")
endforeach()
