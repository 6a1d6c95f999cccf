# pycoyote tests (label "python"): pytest files run by the chosen interpreter against the built package.
execute_process(COMMAND ${COYOTE_PYTHON_EXECUTABLE} -c "import pytest"
                RESULT_VARIABLE _pytest_rc OUTPUT_QUIET ERROR_QUIET)
if(NOT _pytest_rc EQUAL 0)
  message(STATUS "pycoyote: tests skipped (pytest missing for ${COYOTE_PYTHON_EXECUTABLE}; install python3-pytest)")
  return()
endif()
set(PYCOYOTE_TEST_ENV "COYOTE_BACKEND=sim;PYTHONPATH=${CMAKE_CURRENT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
set(PYCOYOTE_PYTEST ${COYOTE_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider --color=no)

# Single-process suites: tests/test_<name>.py -> python_<name>.
# The interrupt test loads the sim model plug-in of the unit tests (CSR writes raise interrupts).
if(TARGET sim_model_plugin OR EXISTS ${PROJECT_SOURCE_DIR}/tests/unit/backend/sim/models/sim_model_plugin.cpp)
  list(APPEND PYCOYOTE_TEST_ENV "PYCOYOTE_TEST_SIM_PLUGIN=$<TARGET_FILE:sim_model_plugin>")
endif()
# The reconfiguration and service suites take sim bitstreams from coyote-sim-bitstream and start a service
# (pycoyote_test_service, a cService with typed test functions).
add_executable(pycoyote_test_service ${CMAKE_CURRENT_SOURCE_DIR}/tests/service_helper.cpp)
target_link_libraries(pycoyote_test_service PRIVATE coyote::runtime coyote_warnings)
list(APPEND PYCOYOTE_TEST_ENV "PYCOYOTE_TEST_SIM_BITSTREAM=$<TARGET_FILE:coyote_sim_bitstream>"
     "PYCOYOTE_TEST_SERVICE=$<TARGET_FILE:pycoyote_test_service>")
foreach(name core rdma reconfig service)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_${name}.py)
    add_test(NAME python_${name} COMMAND ${PYCOYOTE_PYTEST} ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_${name}.py
             -k "not test_example_")
    set_tests_properties(python_${name} PROPERTIES LABELS python TIMEOUT 300 ENVIRONMENT "${PYCOYOTE_TEST_ENV}")
  endif()
endforeach()

# MPI suites under mpiexec (cmake/CoyoteMpiTest.cmake). Not labelled mpi: that label gathers the GoogleTest
# binaries that slurm/tests.sbatch runs on its own.
if(PYCOYOTE_MPI)
  coyote_register_mpi_test(NAME python_mpi RANKS 2 3 COMMAND ${COYOTE_PYTHON_EXECUTABLE} LABELS python
    ARGS -m pytest -q -p no:cacheprovider --color=no ${CMAKE_CURRENT_SOURCE_DIR}/tests/mpi_collectives.py
    ENV ${PYCOYOTE_TEST_ENV} COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000 OMPI_MCA_rmaps_base_oversubscribe=1)
  coyote_register_mpi_test(NAME python_mpi_uncaught RANKS 2 COMMAND ${COYOTE_PYTHON_EXECUTABLE} LABELS python
    ARGS ${CMAKE_CURRENT_SOURCE_DIR}/tests/mpi_uncaught.py TIMEOUT 120 WRAPPER ${CMAKE_CURRENT_SOURCE_DIR}/tests/expect_abort.sh
    ENV ${PYCOYOTE_TEST_ENV} COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000 COYOTE_COLL_TIMEOUT_MS=120000
    PASS_REGULAR_EXPRESSION "UNCAUGHT TEST PASSED")
  coyote_register_mpi_test(NAME python_mpi_exit RANKS 2 COMMAND ${COYOTE_PYTHON_EXECUTABLE} LABELS python
    ARGS ${CMAKE_CURRENT_SOURCE_DIR}/tests/mpi_exit.py TIMEOUT 120
    ENV ${PYCOYOTE_TEST_ENV} COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000 COYOTE_COLL_TIMEOUT_MS=120000
    PASS_REGULAR_EXPRESSION "EXIT TEST PASSED")
  coyote_register_mpi_test(NAME python_mpi_after_finalize RANKS 2 COMMAND ${COYOTE_PYTHON_EXECUTABLE} LABELS python
    ARGS ${CMAKE_CURRENT_SOURCE_DIR}/tests/mpi_after_finalize.py
    ENV ${PYCOYOTE_TEST_ENV} COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000)
endif()

# Examples as smoke tests (labels python and example).
set(PYCOYOTE_EXAMPLES ${CMAKE_CURRENT_SOURCE_DIR}/examples)
add_test(NAME python_example_hello_world
  COMMAND ${COYOTE_PYTHON_EXECUTABLE} ${PYCOYOTE_EXAMPLES}/hello_world.py --max 65536 --runs 5)
add_test(NAME python_example_numpy_interop COMMAND ${COYOTE_PYTHON_EXECUTABLE} ${PYCOYOTE_EXAMPLES}/numpy_interop.py)
# examples/service_client.py starts no service: test_service.py runs it against the test service it starts.
add_test(NAME python_example_service_client
  COMMAND ${PYCOYOTE_PYTEST} ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_service.py -k test_example_service_client)
set_tests_properties(python_example_hello_world python_example_numpy_interop python_example_service_client PROPERTIES
  LABELS "python;example" TIMEOUT 120 ENVIRONMENT "${PYCOYOTE_TEST_ENV}")
if(PYCOYOTE_MPI)
  coyote_register_mpi_test(NAME python_example_mpi_allreduce_np2 RANKS 2 COMMAND ${COYOTE_PYTHON_EXECUTABLE}
    LABELS python example ARGS ${PYCOYOTE_EXAMPLES}/mpi_allreduce.py
    ENV ${PYCOYOTE_TEST_ENV} COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000)
endif()

# The overhead benchmark as a smoke test (labels python and bench): it must run and give positive, finite
# times (--smoke); the targets are reported, not enforced:
# the shared test machine's load decides them).
add_test(NAME python_bench_overhead
  COMMAND ${COYOTE_PYTHON_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/benchmarks/overhead.py
          --small-iterations 2000 --large-iterations 20 --repeats 3 --smoke)
set_tests_properties(python_bench_overhead PROPERTIES LABELS "python;bench" TIMEOUT 120
  ENVIRONMENT "${PYCOYOTE_TEST_ENV}")

# `pip install .` offline into a virtual environment (labels python and package; compiles the extensions again).
add_test(NAME python_pip_install
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/pip_install.sh ${COYOTE_PYTHON_EXECUTABLE} ${PROJECT_SOURCE_DIR}
          ${PROJECT_BINARY_DIR} ${CMAKE_CURRENT_BINARY_DIR}/pip_install_test)
set_tests_properties(python_pip_install PROPERTIES LABELS "python;package" TIMEOUT 600
  ENVIRONMENT "COYOTE_BACKEND=sim")

# `cmake --install` into a scratch prefix, then an import through PYTHONPATH (labels python and package).
if(NOT IS_ABSOLUTE ${COYOTE_PYTHON_INSTALL_DIR})
  set(_mpi_flag 0)
  if(PYCOYOTE_MPI)
    set(_mpi_flag 1)
  endif()
  add_test(NAME python_cmake_install
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/cmake_install.sh ${CMAKE_COMMAND} ${COYOTE_PYTHON_EXECUTABLE} ${PROJECT_BINARY_DIR}
            ${CMAKE_CURRENT_BINARY_DIR}/cmake_install_test ${COYOTE_PYTHON_INSTALL_DIR} ${_mpi_flag})
  set_tests_properties(python_cmake_install PROPERTIES LABELS "python;package" TIMEOUT 300
    ENVIRONMENT "COYOTE_BACKEND=sim")
endif()
