# The collectives examples run as tests (tests/mpi, and tests/hw on the fake driver): small sizes; each example
# verifies its results and prints "Result: ...".
# coyote_register_example_tests(<prefix> [LABELS <label...>] [ENV <k=v...>]): <prefix>_<example>_np3.
function(coyote_register_example_tests prefix)
  cmake_parse_arguments(T "" "" "LABELS;ENV" ${ARGN})
  set(args_allreduce --max 1M --iters 3 --warmup 1)
  set(args_broadcast --max 262144 --iters 2)
  set(args_alltoall --max 65536 --iters 2)
  set(args_sgd --steps 60 --samples 500 --dim 32)
  if(NOT T_LABELS)
    set(T_LABELS mpi)
  endif()
  foreach(ex allreduce broadcast alltoall sgd)
    if(TARGET coyote_mpi_${ex})
      coyote_register_mpi_test(NAME ${prefix}_${ex}_np3 RANKS 3 COMMAND coyote_mpi_${ex} ARGS ${args_${ex}}
        LABELS ${T_LABELS} ENV ${T_ENV}
        PASS_REGULAR_EXPRESSION "Result: (all|distributed)" FAIL_REGULAR_EXPRESSION "FAILED|MISMATCH")
    endif()
  endforeach()
endfunction()
