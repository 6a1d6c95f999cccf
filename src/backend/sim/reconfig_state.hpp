// coyote-mpi sim backend: what reconfigurations chose in this process: the model of each vFPGA and the shell
// changes of each device, applied to vFPGAs opened later (cRcnfg swaps the model of open ones).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "backend/sim/models/models.hpp"
#include "backend/sim/shell_config.hpp"

namespace coyote::detail::sim {

/// Records `spec` (built-in name or .so path) as the model of (device, vfid).
void set_model_override(uint32_t device, int32_t vfid, const std::string& spec);
/// Records `spec` as the model of every vFPGA of `device` (shell loads), replacing per-vFPGA choices.
void set_device_model_override(uint32_t device, const std::string& spec);
/// Appends "key=value,..." shell changes for `device`.
void add_shell_override(uint32_t device, const std::string& settings);
/// The model of (device, vfid): the recorded one, else COYOTE_SIM_MODEL's.
ModelHandle load_model_for(uint32_t device, int32_t vfid);
/// Applies the recorded shell changes of `device` to `cfg`.
void apply_shell_override(uint32_t device, ShellConfig& cfg);

}  // namespace coyote::detail::sim
