# Packaging test: install this build into a scratch prefix, then configure, build and run the consumer project
# in tests/package/consumer against it, as a downstream user would (find_package(CoyoteMPI)).
set(COYOTE_PACKAGE_TEST_DIR ${CMAKE_CURRENT_BINARY_DIR}/package_test)
add_test(NAME package_test
  COMMAND ${CMAKE_COMMAND}
    -DCOYOTE_BUILD_DIR=${PROJECT_BINARY_DIR}
    -DCOYOTE_CONSUMER_SOURCE_DIR=${CMAKE_CURRENT_LIST_DIR}/consumer
    -DCOYOTE_WORK_DIR=${COYOTE_PACKAGE_TEST_DIR}
    -DCOYOTE_GENERATOR=${CMAKE_GENERATOR}
    -DCOYOTE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}
    -DCOYOTE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
    -DCOYOTE_MPIEXEC=$<$<TARGET_EXISTS:coyote_mpi>:${MPIEXEC_EXECUTABLE}>
    -DCOYOTE_MPIEXEC_NUMPROC_FLAG=${MPIEXEC_NUMPROC_FLAG}
    "-DCOYOTE_CXX_FLAGS=${CMAKE_CXX_FLAGS}"
    "-DCOYOTE_EXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}"
    -P ${CMAKE_CURRENT_LIST_DIR}/run_package_test.cmake)
set_tests_properties(package_test PROPERTIES LABELS unit TIMEOUT 600
  ENVIRONMENT "COYOTE_BACKEND=sim")
