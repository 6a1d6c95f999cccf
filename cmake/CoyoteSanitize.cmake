# Sanitizer and fuzzing builds: COYOTE_SANITIZE=<list> (e.g. "address,undefined" or "thread") and COYOTE_FUZZ=ON
# (clang only: libFuzzer targets in tests/fuzz). The flags go into CMAKE_<LANG>_FLAGS and the linker flags, so
# that every target, and the consumer project of tests/package, is built with them.
include_guard(GLOBAL)

set(COYOTE_SANITIZE "" CACHE STRING "Sanitizers to build with, e.g. address,undefined or thread (empty: none)")
option(COYOTE_FUZZ "Build the libFuzzer targets of tests/fuzz (needs clang; implies coverage instrumentation)" OFF)

set(_coyote_san_flags "")
if(COYOTE_SANITIZE)
  string(REPLACE "," ";" _coyote_san_list "${COYOTE_SANITIZE}")
  foreach(s IN LISTS _coyote_san_list)
    if(NOT s MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "COYOTE_SANITIZE: unknown sanitizer '${s}' (address, undefined, thread, leak)")
    endif()
  endforeach()
  if("thread" IN_LIST _coyote_san_list AND ("address" IN_LIST _coyote_san_list OR "leak" IN_LIST _coyote_san_list))
    message(FATAL_ERROR "COYOTE_SANITIZE: thread cannot be combined with address or leak")
  endif()
  # A finding stops the program (non-zero exit), so a test that triggers one fails.
  list(APPEND _coyote_san_flags -fsanitize=${COYOTE_SANITIZE} -fno-omit-frame-pointer)
  if("undefined" IN_LIST _coyote_san_list)
    list(APPEND _coyote_san_flags -fno-sanitize-recover=undefined)
  endif()
endif()
if(COYOTE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "COYOTE_FUZZ=ON needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage feedback for the libraries; the fuzz targets add -fsanitize=fuzzer (libFuzzer's main) themselves.
  list(APPEND _coyote_san_flags -fsanitize=fuzzer-no-link)
endif()
if(_coyote_san_flags)
  list(JOIN _coyote_san_flags " " _coyote_san_string)
  foreach(var IN ITEMS CMAKE_C_FLAGS CMAKE_CXX_FLAGS CMAKE_EXE_LINKER_FLAGS CMAKE_SHARED_LINKER_FLAGS
                       CMAKE_MODULE_LINKER_FLAGS)
    string(APPEND ${var} " ${_coyote_san_string}")
  endforeach()
  message(STATUS "coyote-mpi: sanitizer flags: ${_coyote_san_string}")
endif()
# A library preloaded into a ThreadSanitizer program (the tests' fake driver) must not come before the TSan
# runtime, which has to initialise first: tests put COYOTE_PRELOAD_FIRST (empty in other builds) in front of it in
# LD_PRELOAD.
set(COYOTE_PRELOAD_FIRST "")
if(COYOTE_SANITIZE AND "thread" IN_LIST _coyote_san_list)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libtsan.so
                  OUTPUT_VARIABLE _coyote_tsan_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${_coyote_tsan_runtime}")
    message(FATAL_ERROR "COYOTE_SANITIZE=thread: ${CMAKE_CXX_COMPILER} does not name its libtsan.so")
  endif()
  set(COYOTE_PRELOAD_FIRST "${_coyote_tsan_runtime}:")
endif()
# The suppressions for Open MPI, hwloc and system libraries (tests/support/sanitizer/); scripts/sanitizers.sh
# points ASAN_OPTIONS / LSAN_OPTIONS / UBSAN_OPTIONS / TSAN_OPTIONS at them.
set(COYOTE_SANITIZER_SUPPRESSIONS_DIR ${PROJECT_SOURCE_DIR}/tests/support/sanitizer)
unset(_coyote_san_flags)
unset(_coyote_san_list)
unset(_coyote_san_string)
