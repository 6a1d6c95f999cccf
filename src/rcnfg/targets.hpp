// coyote-mpi: where a checked bitstream goes: the sim backend (model / shell swap) or the hw driver.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace coyote::detail::rcnfg {

/// Applies a sim bitstream to `device` (vfid < 0: shell load); waits the emulated reconfiguration time.
void load_sim(uint32_t device, int32_t vfid, std::span<const char> bytes, const std::string& origin);
/// Throws Errc::no_device (naming `call`) when `device` has no vFPGA `vfid` on the backend it uses: on sim the
/// shell's n_fpga_reg, on hw the vFPGA's device file.
void check_vfid(uint32_t device, int32_t vfid, const char* call);
/// The sim backend's part of check_vfid.
void check_vfid_sim(uint32_t device, int32_t vfid, const char* call);
/// Loads a hw bitstream through /dev/coyote_fpga_<device>_reconfig (vfid < 0: shell load).
void load_hw(uint32_t device, int32_t vfid, std::span<const char> bytes, const std::string& origin);

}  // namespace coyote::detail::rcnfg
