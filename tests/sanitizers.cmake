# Sanitizer reports must not get lost.  A worker's report would otherwise
# land in a server log nobody reads once the test passed (a respawned
# worker keeps the scenario green), so in an IOSERVE_ASAN or IOSERVE_TSAN
# build every test runs with ASAN_/UBSAN_/LSAN_/TSAN_OPTIONS that write
# reports to files in <build>/sanitizer-logs, and the fixture around all
# tests fails (sanitizers.reports) when any report file appeared, printing
# them.  Included from tests/CMakeLists.txt; applied when that directory is
# complete, so it covers every test defined there (tests/bench has its own
# directory and checks its processes' exit status itself).
if(IOSERVE_ASAN OR IOSERVE_TSAN)
  set(IOSERVE_SANITIZER_LOG_DIR ${CMAKE_BINARY_DIR}/sanitizer-logs)

  function(ioserve_sanitizer_reports)
    set(d ${IOSERVE_SANITIZER_LOG_DIR})
    get_property(tests DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTY TESTS)
    if(NOT tests)
      return()
    endif()
    # ":" separates options, so no ":" may appear in the paths.
    set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT
      "ASAN_OPTIONS=log_path=${d}/asan:halt_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
      "UBSAN_OPTIONS=log_path=${d}/ubsan:halt_on_error=1:print_stacktrace=1"
      "LSAN_OPTIONS=log_path=${d}/lsan:suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
      "TSAN_OPTIONS=log_path=${d}/tsan:halt_on_error=0:second_deadlock_stack=1:history_size=4")
    set_property(TEST ${tests} APPEND PROPERTY FIXTURES_REQUIRED sanitizer_reports)
    set(here ${CMAKE_CURRENT_SOURCE_DIR})
    add_test(NAME sanitizers.clear
             COMMAND ${CMAKE_COMMAND} -DDIR=${d} -DMODE=clear
                     -P ${here}/sanitizer_reports.cmake)
    add_test(NAME sanitizers.reports
             COMMAND ${CMAKE_COMMAND} -DDIR=${d} -DMODE=check
                     -P ${here}/sanitizer_reports.cmake)
    set_tests_properties(sanitizers.clear PROPERTIES FIXTURES_SETUP sanitizer_reports)
    set_tests_properties(sanitizers.reports PROPERTIES FIXTURES_CLEANUP sanitizer_reports)
  endfunction()
  # At the end of this directory, when all its tests exist.
  cmake_language(DEFER CALL ioserve_sanitizer_reports)
endif()
