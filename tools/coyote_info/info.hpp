// coyote-info: what a node offers coyote-mpi (backends, devices, vFPGAs, shell, network identity, huge pages,
// locality) and, with -v, the live state of this user's cThreads. Each part fills a piece of one Json tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/json.hpp"

namespace coyote::tools::info {

/// The sim backend: its configuration (COYOTE_SIM_* in force) and the vFPGAs of `device`.
Json sim_backend(uint32_t device);
/// The hw backend: the device files /dev/coyote_fpga_*, the driver, and each vFPGA through the hw backend
/// (only `device` when given).
Json hw_backend(std::optional<uint32_t> device);
/// Huge pages: /proc/meminfo and every /sys/kernel/mm/hugepages/hugepages-* pool.
Json huge_pages();
/// hwloc: the machine (NUMA nodes, cores, PUs), this process's CPU binding and each Xilinx PCI function's
/// NUMA node and local CPUs.
Json locality();
/// Live cThreads of this user (status segments of the stall doctor): counters, queue pairs, peers, diagnosis.
Json live_processes();

/// What keeps `backend` ("sim" or "hw") of the report `root` from serving programs: an error opening it, no
/// device, a vFPGA that does not open; "" when nothing does.
std::string backend_problem(const Json& root, const std::string& backend);

/// The shell configuration decoded from the shell and control words (features, page sizes, vFPGAs, ctids).
Json shell_json(uint64_t shell_word, uint64_t control_word);

}  // namespace coyote::tools::info
