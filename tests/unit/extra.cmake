# Extra targets of the unit tests.

# A user-logic model shared object the sim tests load with COYOTE_SIM_MODEL=<path>.
add_library(sim_model_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/unit/backend/sim/models/sim_model_plugin.cpp)
target_include_directories(sim_model_plugin PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(sim_model_plugin PRIVATE coyote_warnings)
set_target_properties(sim_model_plugin PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden)
if(TARGET sim_models_test)
  add_dependencies(sim_models_test sim_model_plugin)
  target_compile_definitions(sim_models_test PRIVATE
    SIM_MODEL_PLUGIN="$<TARGET_FILE:sim_model_plugin>"
    COYOTE_RUNTIME_LIB="$<TARGET_FILE:coyote_runtime>")
endif()

# These tests count the stale segments of dead processes that their own reclaim removes (the dead-peer test also
# checks that a killed process's segments stay until then); every other sim process reclaims stale segments of dead
# processes when it opens its first device, so nothing may start beside them. core_api_test lost that race once in
# the ASan stage (1 segment reclaimed of 2).
foreach(t rdma_wire_test core_api_test sim_config_test)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()
