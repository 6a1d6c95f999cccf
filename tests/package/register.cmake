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

# The installed targets as built: no run path entry that would search the working directory (cmake/CoyoteRpath.cmake).
set(_coyote_rpath_files)
foreach(t IN ITEMS coyote_runtime coyote_mpi coyote_fake_driver coyote_settings coyote_sim_bitstream coyote_info
              coyote_write_lat coyote_write_bw coyote_read_lat coyote_read_bw coyote_send_lat coyote_send_bw)
  if(TARGET ${t})
    list(APPEND _coyote_rpath_files $<TARGET_FILE:${t}>)
  endif()
endforeach()
string(REPLACE ";" "|" _coyote_rpath_files "${_coyote_rpath_files}")
add_test(NAME build_tree_runpaths
  COMMAND ${CMAKE_COMMAND} "-DFILES=${_coyote_rpath_files}" -P ${CMAKE_CURRENT_LIST_DIR}/check_runpaths.cmake)
set_tests_properties(build_tree_runpaths PROPERTIES LABELS unit TIMEOUT 60)
