# Tests of the hw backend (label hw). hw_abi_test: golden ioctl numbers and register words.
add_executable(hw_abi_test ${CMAKE_CURRENT_SOURCE_DIR}/hw/hw_abi_test.cpp)
target_link_libraries(hw_abi_test PRIVATE coyote::runtime GTest::gtest GTest::gtest_main coyote_warnings)
target_include_directories(hw_abi_test PRIVATE ${PROJECT_SOURCE_DIR}/src)
add_test(NAME hw_abi_test COMMAND hw_abi_test)
set_tests_properties(hw_abi_test PROPERTIES LABELS hw TIMEOUT 60)
