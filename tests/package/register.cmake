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
    -DCOYOTE_C_COMPILER=${CMAKE_C_COMPILER}
    -P ${CMAKE_CURRENT_LIST_DIR}/run_package_test.cmake)
set_tests_properties(package_test PROPERTIES LABELS unit TIMEOUT 600
  ENVIRONMENT "COYOTE_BACKEND=sim")
