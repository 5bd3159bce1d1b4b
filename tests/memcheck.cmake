# valgrind memcheck, one ctest per model (label memcheck): `make valgrind`
# configures build-valgrind with -DIOSERVE_VALGRIND=ON and runs them.  The
# scenario (tests/integration/sc_memcheck.c) runs the server under
# valgrind and stops it with SIGQUIT so every process exits normally and
# is leak-checked.  Included from tests/CMakeLists.txt.
option(IOSERVE_VALGRIND "Add the valgrind memcheck tests (make valgrind)" OFF)
if(IOSERVE_VALGRIND AND TARGET ioserve-it)
  find_program(IOSERVE_VALGRIND_PROGRAM valgrind)
  foreach(model IN LISTS IOSERVE_MODELS) # an unbuilt plugin: skipped, saying so
    add_test(NAME memcheck.${model} COMMAND ioserve-it memcheck ${model})
    set_tests_properties(memcheck.${model} PROPERTIES
      ENVIRONMENT "${IT_ENV};IOSERVE_VALGRIND=${IOSERVE_VALGRIND_PROGRAM}"
      LABELS memcheck SKIP_RETURN_CODE 77 TIMEOUT 300)
  endforeach()
endif()
