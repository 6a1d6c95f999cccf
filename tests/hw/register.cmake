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
  ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=$<TARGET_FILE:coyote_fake_driver>;COYOTE_SIM_MODEL=$<TARGET_FILE:sim_model_plugin>")

# Backend-independent unit tests run again with COYOTE_BACKEND=hw on the fake driver (assertions unchanged); of
# core_api_test only BackendSelection.HwWithoutDeviceFailsClearly reaches the hw backend (the others force sim).
foreach(t core_api_test)
  if(TARGET ${t})
    add_test(NAME ${t}_on_fake_driver COMMAND ${t})
    add_dependencies(${t} coyote_fake_driver)
    set_tests_properties(${t}_on_fake_driver PROPERTIES LABELS hw TIMEOUT 300
      ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=$<TARGET_FILE:coyote_fake_driver>")
  endif()
endforeach()

# Smoke run of the hw_host benchmark suite on the fake driver in sink mode (label bench; no timing assertions).
if(COYOTE_BUILD_BENCHMARKS AND TARGET MPI::MPI_C)
  add_test(NAME bench_hw_host_smoke COMMAND hw_bench --benchmark_min_time=0.01 --benchmark_color=false)
  set_tests_properties(bench_hw_host_smoke PROPERTIES LABELS bench TIMEOUT 120
    ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:coyote_fake_driver>;COYOTE_FAKE_SINK=1"
    FAIL_REGULAR_EXPRESSION "ERROR OCCURRED")
endif()

# hw_rcnfg_test: cRcnfg through the fake driver's reconfiguration device (bitstream checks, app and shell loads).
add_executable(hw_rcnfg_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_rcnfg_test.cpp)
target_link_libraries(hw_rcnfg_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_rcnfg_test PRIVATE ${PROJECT_SOURCE_DIR}/src)
add_dependencies(hw_rcnfg_test coyote_fake_driver)
add_test(NAME hw_rcnfg_test COMMAND hw_rcnfg_test)
set_tests_properties(hw_rcnfg_test PROPERTIES LABELS "hw;service" TIMEOUT 60
  ENVIRONMENT "COYOTE_BACKEND=hw;LD_PRELOAD=$<TARGET_FILE:coyote_fake_driver>")
