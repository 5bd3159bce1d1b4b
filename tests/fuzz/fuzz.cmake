# Fuzz targets: tests/fuzz/fuzz_<target>.c, each one LLVMFuzzerTestOneInput.
# Included from tests/CMakeLists.txt.
#
#  - In every build, fuzz_<target>_replay runs the target over its corpus
#    (tests/fuzz/corpus/<target>/: seeds and every crash kept as a
#    regression input) with a plain main(): ctest fuzz.<target>.corpus.
#  - With -DIOSERVE_FUZZ=ON and clang (`make fuzz`, tree build-fuzz), the
#    libFuzzer binaries fuzz_<target> are built with
#    -fsanitize=fuzzer,address,undefined (everything else with
#    fuzzer-no-link,address,undefined), and ctest fuzz.<target> (label
#    fuzz) fuzzes each for FUZZ_SECONDS (default 15).  Without clang's
#    fuzzer runtime those tests report skipped (77).
set(IOSERVE_FUZZ_TARGETS http config pump)
set(FUZZ_LIB_http ioserve_core)
set(FUZZ_LIB_config ioserve_core)
set(FUZZ_LIB_pump ioserve_common)
set(FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

foreach(t IN LISTS IOSERVE_FUZZ_TARGETS)
  add_executable(fuzz_${t}_replay ${FUZZ_DIR}/fuzz_${t}.c ${FUZZ_DIR}/replay_main.c)
  target_link_libraries(fuzz_${t}_replay PRIVATE ${FUZZ_LIB_${t}})
  add_test(NAME fuzz.${t}.corpus
           COMMAND fuzz_${t}_replay ${FUZZ_DIR}/corpus/${t})
  set_tests_properties(fuzz.${t}.corpus PROPERTIES TIMEOUT 120)
endforeach()

if(IOSERVE_FUZZ)
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=fuzzer")
  check_c_source_compiles("
    #include <stddef.h>
    #include <stdint.h>
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }"
    IOSERVE_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)

  set(fuzz_targets "")
  foreach(t IN LISTS IOSERVE_FUZZ_TARGETS)
    if(IOSERVE_HAVE_LIBFUZZER)
      add_executable(fuzz_${t} ${FUZZ_DIR}/fuzz_${t}.c)
      target_link_libraries(fuzz_${t} PRIVATE ${FUZZ_LIB_${t}})
      # The sanitizers come with IOSERVE_FUZZ (CMakeLists.txt); libFuzzer's
      # main is linked here only.
      target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
      list(APPEND fuzz_targets fuzz_${t})
      set(fuzz_bin $<TARGET_FILE:fuzz_${t}>)
    else()
      set(fuzz_bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${t}-not-built)
    endif()
    add_test(NAME fuzz.${t}
             COMMAND sh ${FUZZ_DIR}/run-fuzz.sh ${fuzz_bin}
                     ${FUZZ_DIR}/corpus/${t} ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${t})
    set_tests_properties(fuzz.${t} PROPERTIES
      LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 3700)
  endforeach()
  # `cmake --build build-fuzz --target fuzzers` builds only these.
  add_custom_target(fuzzers DEPENDS ${fuzz_targets})
endif()
