# Tests of the hw backend (label hw). hw_abi_test: golden ioctl numbers and register words.
add_executable(hw_abi_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_abi_test.cpp)
target_link_libraries(hw_abi_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_abi_test PRIVATE ${PROJECT_SOURCE_DIR}/src)
add_test(NAME hw_abi_test COMMAND hw_abi_test)
set_tests_properties(hw_abi_test PROPERTIES LABELS hw TIMEOUT 60)

# hw_fake_test: cThread on COYOTE_BACKEND=hw against the fake driver (LD_PRELOAD), the test plug-in model as user logic.
add_executable(hw_fake_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_fake_test.cpp)
target_link_libraries(hw_fake_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_fake_test PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(hw_fake_test coyote_fake_driver sim_model_plugin)
add_test(NAME hw_fake_test COMMAND hw_fake_test)
set_tests_properties(hw_fake_test PROPERTIES LABELS hw TIMEOUT 300
  ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>;COYOTE_SIM_MODEL=$<TARGET_FILE:sim_model_plugin>")

# hw_rdma_test: RDMA WRITE / READ / SEND between two processes on the hw backend and the fake driver.
add_executable(hw_rdma_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_rdma_test.cpp)
target_link_libraries(hw_rdma_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_rdma_test PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(hw_rdma_test coyote_fake_driver)
add_test(NAME hw_rdma_test COMMAND hw_rdma_test)
set_tests_properties(hw_rdma_test PROPERTIES LABELS hw TIMEOUT 300
  ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>;COYOTE_FAKE_HUGE_PAGES=1")

# Backend-independent unit tests run again with COYOTE_BACKEND=hw on the fake driver (assertions unchanged); of
# core_api_test only BackendSelection.HwWithoutDeviceFailsClearly reaches the hw backend (the others force sim);
# cbench_test, oob_tcp_test and registers_test open no device (they show that the fake leaves them alone).
foreach(t core_api_test cbench_test oob_tcp_test registers_test)
  if(TARGET ${t})
    add_test(NAME ${t}_on_fake_driver COMMAND ${t})
    add_dependencies(${t} coyote_fake_driver)
    set_tests_properties(${t}_on_fake_driver PROPERTIES LABELS hw TIMEOUT 300
      ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>")
  endif()
endforeach()
# core_api_test runs alone (tests/unit/extra.cmake: it counts the stale segments its reclaim removes), and so must
# its twin: the two also take the same sim vFPGA locks (devices 5 - 7, one semaphore per user), so side by side one's
# lock test found the lock held by the other.
if(TEST core_api_test_on_fake_driver)
  set_tests_properties(core_api_test_on_fake_driver PROPERTIES RUN_SERIAL TRUE)
endif()

# Smoke run of the hw_host benchmark suite on the fake driver in sink mode (label bench; no timing assertions).
if(COYOTE_BUILD_BENCHMARKS AND TARGET MPI::MPI_C)
  add_test(NAME bench_hw_host_smoke COMMAND hw_bench --benchmark_min_time=0.01 --benchmark_color=false)
  set_tests_properties(bench_hw_host_smoke PROPERTIES LABELS bench TIMEOUT 120
    ENVIRONMENT "LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>;COYOTE_FAKE_SINK=1"
    FAIL_REGULAR_EXPRESSION "ERROR OCCURRED")
endif()

# hw_rcnfg_test: cRcnfg through the fake driver's reconfiguration device (bitstream checks, app and shell loads).
add_executable(hw_rcnfg_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_rcnfg_test.cpp)
target_link_libraries(hw_rcnfg_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_rcnfg_test PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(hw_rcnfg_test coyote_fake_driver)
add_test(NAME hw_rcnfg_test COMMAND hw_rcnfg_test)
set_tests_properties(hw_rcnfg_test PROPERTIES LABELS "hw;service" TIMEOUT 60
  ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>")

# The 2-rank demo and the MPI tests (bootstrap, wiring, collectives on 2 to 4 ranks) on COYOTE_BACKEND=hw and the
# fake driver, unchanged, registered like tests/mpi (cmake/CoyoteMpiTest.cmake) with label hw.
if(TARGET coyote_mpi AND TARGET coyote_fake_driver)
  # Cards with four vFPGAs: each rank of the node takes its own vFPGA, as on hardware (24 cards: the bootstrap
  # test names devices up to 23).
  set(_coyote_hw_mpi_env COYOTE_BACKEND=hw LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver> COYOTE_FAKE_HUGE_PAGES=1
      COYOTE_SIM_SHELL=n_fpga_reg=4 COYOTE_FAKE_DEVICES=24 COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000
      OMPI_MCA_rmaps_base_oversubscribe=1)
  if(TARGET coyote_mpi_demo)
    coyote_register_mpi_test(NAME hw_mpi_demo_np2 RANKS 2 COMMAND coyote_mpi_demo LABELS hw ENV ${_coyote_hw_mpi_env}
      PASS_REGULAR_EXPRESSION "Result: all checks passed" FAIL_REGULAR_EXPRESSION "FAIL")
  endif()
  # DeviceSelection checks the placement rule of the backend in the environment: on hw the ranks of a host share
  # device 0 and take a vFPGA each (the vFPGA files present).
  coyote_register_mpi_test(NAME hw_mpi_bootstrap_test RANKS 2 3 4 COMMAND mpi_bootstrap_test LABELS hw
    ENV ${_coyote_hw_mpi_env})
  coyote_register_mpi_test(NAME hw_mpi_wiring_test RANKS 2 3 4 COMMAND mpi_wiring_test LABELS hw
    ENV ${_coyote_hw_mpi_env})
  # Bootstrap faults on hw, with cards of two vFPGAs: three ranks on the host are one too many.
  coyote_register_mpi_test(NAME hw_mpi_bootstrap_faults_test_np3 RANKS 3 COMMAND mpi_bootstrap_faults_test LABELS hw
    ENV ${_coyote_hw_mpi_env} COYOTE_SIM_SHELL=n_fpga_reg=2)
  # The hw backend has no remote-access windows: the collectives send through the ring, as the coll test expects
  # when cross-process access is denied (COYOTE_COLL_TEST_EXPECT_DIRECT=0). All cases run, CollErrors.Mismatch*
  # too: the rank that finds a mismatch tells the others at once ("reported a mismatched collective call").
  coyote_register_mpi_test(NAME hw_mpi_coll_test RANKS 2 3 4 COMMAND mpi_coll_test LABELS hw
    ENV ${_coyote_hw_mpi_env} COYOTE_COLL_BUFFER_SIZE=65536 COYOTE_COLL_CHUNK=4096 COYOTE_COLL_TEST_EXPECT_DIRECT=0)
  # The other examples, with the small sizes tests/mpi gives them (tests/mpi/examples.cmake).
  coyote_register_example_tests(hw_mpi_example LABELS hw ENV ${_coyote_hw_mpi_env})
  if(TARGET coyote_mpi_perf_rdma)
    coyote_register_mpi_test(NAME hw_mpi_perf_rdma_np4 RANKS 4 COMMAND coyote_mpi_perf_rdma ARGS --max 65536 --reps 50
      LABELS hw ENV ${_coyote_hw_mpi_env} PASS_REGULAR_EXPRESSION "all payloads verified")
  endif()
  # More of tests/mpi, unchanged: the porting guide's program, the silent singleton, the bootstrap deadline (its
  # wrapper sets the 1.5 s deadline), and the collectives offloaded to the `reduce` model (its model-mismatch
  # cases open fresh devices 300+ and 400+: the fake makes up to 1024 devices).
  coyote_register_mpi_test(NAME hw_mpi_porting_test_np2 RANKS 2 COMMAND mpi_porting_test LABELS hw
    ENV ${_coyote_hw_mpi_env})
  coyote_register_mpi_test(NAME hw_mpi_singleton_test RANKS 1 COMMAND mpi_singleton_test TIMEOUT 120 LABELS hw
    ENV ${_coyote_hw_mpi_env} SLURM_NTASKS=4)
  coyote_register_mpi_test(NAME hw_mpi_deadline_test RANKS 3 COMMAND mpi_deadline_probe TIMEOUT 120 LABELS hw
    WRAPPER ${PROJECT_SOURCE_DIR}/tests/mpi/deadline_test.sh
    ENV ${_coyote_hw_mpi_env} PASS_REGULAR_EXPRESSION "DEADLINE TEST PASSED")
  set(_coyote_hw_offload_env ${_coyote_hw_mpi_env})
  list(TRANSFORM _coyote_hw_offload_env REPLACE "^COYOTE_FAKE_DEVICES=.*" "COYOTE_FAKE_DEVICES=404")
  foreach(n 2 3)
    coyote_register_mpi_test(NAME hw_mpi_coll_offload_test_np${n} RANKS ${n} COMMAND mpi_coll_offload_test LABELS hw
      ENV ${_coyote_hw_offload_env} COYOTE_SIM_MODEL=reduce COYOTE_COLL_OFFLOAD=1 COYOTE_COLL_BUFFER_SIZE=65536
          COYOTE_COLL_CHUNK=4096)
  endforeach()
  # A rank SIGKILLed inside an allreduce (tests/mpi/coll_peer_death.sh), under plain mpirun and --enable-recovery:
  # the hw NIC reports nothing, so the MPI layer's liveness channel (pidfds: all ranks share this host) must make
  # every survivor fail naming rank 1 within 5 s, far from the 20 s collectives deadline.
  if(COYOTE_BUILD_EXAMPLES)
    foreach(_v plain recovery)
      set(_name hw_mpi_coll_peer_death_sigkill_np3)
      set(_extra "")
      if(_v STREQUAL recovery)
        set(_name hw_mpi_coll_peer_death_sigkill_recovery_np3)
        set(_extra PEER_DEATH_RECOVERY=1)
      endif()
      coyote_register_mpi_test(NAME ${_name} RANKS 3 COMMAND mpi_coll_peer_death ARGS sigkill
        WRAPPER ${PROJECT_SOURCE_DIR}/tests/mpi/coll_peer_death.sh 3 TIMEOUT 120 LABELS hw
        ENV ${_coyote_hw_mpi_env} ${_extra} PEER_DEATH_DETECT_WITHIN=5 PEER_DEATH_NEXT_START=$<TARGET_FILE:hello_world>
        PASS_REGULAR_EXPRESSION "PEER DEATH TEST PASSED")
    endforeach()
  endif()
  # The legacy register layout (every QP context word a separate store), as tests/mpi runs the wiring test too.
  coyote_register_mpi_test(NAME hw_mpi_wiring_test_legacy_np3 RANKS 3 COMMAND mpi_wiring_test LABELS hw
    ENV ${_coyote_hw_mpi_env} COYOTE_SIM_SHELL=avx=0,n_fpga_reg=4 COYOTE_TEST_EXPECT_LEGACY=1)
endif()

# hw_gpu_test: getMem(GPU) of a COYOTE_ENABLE_GPU=ON (CUDA) build on the fake driver and a fake libcuda.so.1
# (tests/hw/fake_cuda), preloaded together: device memory in memfds, dma-bufs that the fake driver maps for the sim.
if(COYOTE_GPU_BACKEND STREQUAL "CUDA")
  add_library(coyote_fake_cuda SHARED ${CMAKE_CURRENT_SOURCE_DIR}/hw/fake_cuda/fake_cuda.cpp)
  set_target_properties(coyote_fake_cuda PROPERTIES OUTPUT_NAME cuda VERSION 1 SOVERSION 1
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fake_cuda)
  target_include_directories(coyote_fake_cuda SYSTEM PRIVATE ${COYOTE_CUDA_INCLUDE_DIRS})
  target_link_libraries(coyote_fake_cuda PRIVATE coyote_warnings)
  add_executable(hw_gpu_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_gpu_test.cpp)
  target_link_libraries(hw_gpu_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings ${CMAKE_DL_LIBS})
  target_include_directories(hw_gpu_test PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  add_dependencies(hw_gpu_test coyote_fake_driver coyote_fake_cuda)
  add_test(NAME hw_gpu_test COMMAND hw_gpu_test)
  set_tests_properties(hw_gpu_test PROPERTIES LABELS hw TIMEOUT 120
    ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>:$<TARGET_FILE:coyote_fake_cuda>")
  # The same binary with the fake driver only: getMem(GPU) without any libcuda.so.1 names the missing library.
  add_test(NAME hw_gpu_test_no_libcuda COMMAND hw_gpu_test --gtest_filter=HwGpuNoDriver.*)
  set_tests_properties(hw_gpu_test_no_libcuda PROPERTIES LABELS hw TIMEOUT 60
    ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=${COYOTE_PRELOAD_FIRST}$<TARGET_FILE:coyote_fake_driver>")
  message(STATUS "GPU tests: hw_gpu_test, hw_gpu_test_no_libcuda (fake driver and fake libcuda.so.1)")
else()
  message(STATUS "GPU tests (hw_gpu_test) not registered: they need -DCOYOTE_ENABLE_GPU=ON and the CUDA toolkit's "
    "cuda.h (find_package(CUDAToolkit)); no GPU is needed")
endif()
