# Runs programs under mpiexec: the launcher flags are detected once here, and every test under mpiexec is
# registered through coyote_register_mpi_test (tests/mpi, tests/bench) or its command built by
# coyote_mpiexec_command (benchmarks/).
include_guard(GLOBAL)

# Open MPI needs --oversubscribe (2 cores) and --allow-run-as-root (CI runs as root); other launchers need
# nothing. COYOTE_MPIEXEC_EXTRA goes after MPIEXEC_PREFLAGS.
set(COYOTE_MPIEXEC_EXTRA "")
if(MPIEXEC_EXECUTABLE)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _coyote_mpiexec_version ERROR_QUIET)
  if(_coyote_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(COYOTE_MPIEXEC_EXTRA --oversubscribe --allow-run-as-root)
  endif()
  unset(_coyote_mpiexec_version)
endif()

# coyote_mpiexec_command(<var> <ranks> <program> [args...])
# Sets <var> to the launcher command running <program> on <ranks> ranks. <program> is a target name (run as
# its file, resolved at generate time, so the target may be defined later) or a path (it names a file when it
# holds a '/', or when it is a generator expression).
function(coyote_mpiexec_command var ranks program)
  if(program MATCHES "[/$<]")
    set(exe ${program})
  else()
    set(exe $<TARGET_FILE:${program}>)
  endif()
  set(${var} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ranks} ${MPIEXEC_PREFLAGS} ${COYOTE_MPIEXEC_EXTRA}
      ${exe} ${MPIEXEC_POSTFLAGS} ${ARGN} PARENT_SCOPE)
endfunction()

# coyote_register_mpi_test(NAME <name> RANKS <n...> COMMAND <target or file> [ARGS <arg...>] [ENV <k=v...>]
#                          [LABELS <label...>] [TIMEOUT <s>] [WRAPPER <script> [<arg>...]]
#                          [PASS_REGULAR_EXPRESSION <re>] [FAIL_REGULAR_EXPRESSION <re>])
# One CTest test per rank count: named <name> when RANKS holds one count, <name>_np<n> when it holds several.
# The test runs `[WRAPPER...] mpiexec -n <n> ... <program> [ARGS...]` with PROCESSORS <n> (left unset for one
# rank), the environment ENV (nothing added), LABELS (default mpi) and TIMEOUT (default 300 s). A WRAPPER is a
# script that starts the launcher itself: it gets the whole mpiexec command line as its trailing arguments.
function(coyote_register_mpi_test)
  cmake_parse_arguments(PARSE_ARGV 0 T ""
    "NAME;COMMAND;TIMEOUT;PASS_REGULAR_EXPRESSION;FAIL_REGULAR_EXPRESSION" "RANKS;ARGS;ENV;LABELS;WRAPPER")
  if(T_UNPARSED_ARGUMENTS OR NOT T_NAME OR NOT T_RANKS OR NOT T_COMMAND)
    message(FATAL_ERROR "coyote_register_mpi_test(${ARGV}): needs NAME, RANKS and COMMAND and nothing else")
  endif()
  if(NOT T_LABELS)
    set(T_LABELS mpi)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  list(LENGTH T_RANKS counts)
  foreach(n IN LISTS T_RANKS)
    set(name ${T_NAME})
    if(counts GREATER 1)
      set(name ${T_NAME}_np${n})
    endif()
    coyote_mpiexec_command(cmd ${n} ${T_COMMAND} ${T_ARGS})
    add_test(NAME ${name} COMMAND ${T_WRAPPER} ${cmd})
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
    if(n GREATER 1)
      set_tests_properties(${name} PROPERTIES PROCESSORS ${n})
    endif()
    if(T_ENV)
      set_tests_properties(${name} PROPERTIES ENVIRONMENT "${T_ENV}")
    endif()
    if(DEFINED T_PASS_REGULAR_EXPRESSION)
      set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${T_PASS_REGULAR_EXPRESSION}")
    endif()
    if(DEFINED T_FAIL_REGULAR_EXPRESSION)
      set_tests_properties(${name} PROPERTIES FAIL_REGULAR_EXPRESSION "${T_FAIL_REGULAR_EXPRESSION}")
    endif()
  endforeach()
endfunction()
