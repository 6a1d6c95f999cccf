# Script mode (cmake -P): install, configure + build the consumer, run it. Any failing step fails the test.
foreach(var COYOTE_BUILD_DIR COYOTE_CONSUMER_SOURCE_DIR COYOTE_WORK_DIR COYOTE_GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_package_test.cmake: ${var} is not set")
  endif()
endforeach()

set(prefix ${COYOTE_WORK_DIR}/prefix)
set(consumer_build ${COYOTE_WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${COYOTE_WORK_DIR})
file(MAKE_DIRECTORY ${COYOTE_WORK_DIR})

function(run_step name)
  message(STATUS "package_test: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "package_test: step '${name}' failed (exit status ${rc}): ${ARGN}")
  endif()
endfunction()

run_step("install into ${prefix}" ${CMAKE_COMMAND} --install ${COYOTE_BUILD_DIR} --prefix ${prefix})

if(NOT EXISTS ${prefix}/include/coyote/cThread.hpp OR NOT EXISTS ${prefix}/include/coyote/cBench.hpp)
  message(FATAL_ERROR "package_test: the install did not put cThread.hpp and cBench.hpp under ${prefix}/include/coyote")
endif()

# Installed binaries carry only absolute or $ORIGIN run paths.
include(${CMAKE_CURRENT_LIST_DIR}/check_runpaths.cmake)
file(GLOB_RECURSE installed_elves LIST_DIRECTORIES false ${prefix}/lib/*.so* ${prefix}/bin/*)
coyote_check_runpaths(package_test ${installed_elves})

set(configure_args -S ${COYOTE_CONSUMER_SOURCE_DIR} -G ${COYOTE_GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
if(COYOTE_MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${COYOTE_MAKE_PROGRAM})
endif()
if(COYOTE_CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${COYOTE_CXX_COMPILER})
endif()
# The consumer is built with this build's flags (a sanitizer build's consumer must link the sanitizer too).
list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${COYOTE_CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${COYOTE_EXE_LINKER_FLAGS}")
run_step("configure consumer" ${CMAKE_COMMAND} ${configure_args} -B ${consumer_build})
run_step("build consumer" ${CMAKE_COMMAND} --build ${consumer_build})
# The consumers run without LD_LIBRARY_PATH: the installed libraries must find each other through their run paths.
run_step("run consumer" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${consumer_build}/coyote_consumer)
run_step("run quote-include consumer" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH
  ${consumer_build}/coyote_quote_consumer)
if(COYOTE_MPIEXEC)
  if(NOT EXISTS ${consumer_build}/coyote_mpi_consumer)
    message(FATAL_ERROR "package_test: the MPI layer is installed but the consumer found no coyote::mpi")
  endif()
  # Open MPI: allow root (CI) and more ranks than cores through its environment; other MPIs ignore these.
  run_step("run MPI consumer on 2 ranks" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    ${COYOTE_MPIEXEC} ${COYOTE_MPIEXEC_NUMPROC_FLAG} 2 ${consumer_build}/coyote_mpi_consumer)
endif()

# A machine without MPI (find_package(MPI) disabled): coyote::runtime consumers still configure, build and run,
# coyote::mpi is absent; a consumer that asks for the MPI component fails to configure, saying so.
if(COYOTE_MPIEXEC)
  set(nompi_build ${COYOTE_WORK_DIR}/consumer-build-nompi)
  set(nompi_args ${configure_args} -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON)
  run_step("configure consumer without MPI" ${CMAKE_COMMAND} ${nompi_args} -B ${nompi_build})
  run_step("build consumer without MPI" ${CMAKE_COMMAND} --build ${nompi_build})
  if(EXISTS ${nompi_build}/coyote_mpi_consumer)
    message(FATAL_ERROR "package_test: coyote::mpi was defined although MPI was not found")
  endif()
  run_step("run consumer built without MPI" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH
    ${nompi_build}/coyote_consumer)
  execute_process(COMMAND ${CMAKE_COMMAND} ${nompi_args} -B ${nompi_build}-required -DCOYOTE_CONSUMER_REQUIRE_MPI=ON
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 OR NOT out MATCHES "the MPI component")
    message(FATAL_ERROR "package_test: COMPONENTS MPI without MPI configured (exit ${rc}) or did not name MPI:\n${out}")
  endif()
  message(STATUS "package_test: COMPONENTS MPI without MPI fails as it should")
endif()
