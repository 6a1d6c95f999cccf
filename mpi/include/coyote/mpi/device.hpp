// coyote-mpi: which (device, vFPGA) each rank uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/communicator.hpp>

namespace coyote::mpi {

/// The (device, vFPGA) a rank drives, and why.
struct DeviceAssignment {
    uint32_t device = 0;
    int32_t vfid = 0;
    std::string backend; ///< "sim" or "hw"
    std::string source;  ///< "default", "options", "COYOTE_MPI_DEVICE_MAP", "COYOTE_MPI_DEVICE/COYOTE_MPI_VFID"
    /// Index of the rank among the ranks of its host (host name; plus network namespace on sim). Equals the
    /// MPI node-local rank unless several MPI "nodes" share one host.
    int host_rank = 0;
};

/// Overrides of the default assignment. Precedence: options > COYOTE_MPI_DEVICE_MAP >
/// COYOTE_MPI_DEVICE / COYOTE_MPI_VFID > default.
struct DeviceSelectOptions {
    std::optional<uint32_t> device;
    std::optional<int32_t> vfid;
    /// "rank:dev:vf,rank:dev:vf,..." (ranks of the communicator); same syntax as COYOTE_MPI_DEVICE_MAP.
    std::string device_map;
    /// Check that the device exists (hw: /dev/coyote_fpga_<d>_v<v>).
    bool check_exists = true;
    /// Check that no two ranks of one host share (device, vFPGA).
    bool check_collisions = true;
    BootstrapOptions bootstrap = BootstrapOptions::from_env();
};

/// Parses "rank:dev:vf,..." into (rank, device, vfid) entries; throws Errc::invalid_argument naming the
/// offending entry.
struct DeviceMapEntry {
    int rank = 0;
    uint32_t device = 0;
    int32_t vfid = 0;
};
/// `origin` names the map's source in the errors.
std::vector<DeviceMapEntry> parse_device_map(const std::string& text,
                                             const std::string& origin = "COYOTE_MPI_DEVICE_MAP");

/// The default assignment for a host-local rank: sim -> (local_rank, 0); hw -> (0, local_rank) when the shell
/// exposes several vFPGAs (`hw_vfpgas` > 1), else (0, 0).
DeviceAssignment default_assignment(const std::string& backend, int local_rank, int hw_vfpgas);

/// Number of /dev/coyote_fpga_<device>_v<n> files (consecutive from v0).
int count_hw_vfpgas(uint32_t device);

/// Chooses this rank's (device, vFPGA). Collective over `comm`: one allgather of every rank's host and choices,
/// from which every rank derives every assignment (defaults use the host-local rank) and throws the same
/// error when two ranks on one host share (device, vFPGA) or a map has no entry for a rank. On hw, a second
/// allgather shares whether each rank's /dev file exists (Errc::no_device naming the rank and the file).
DeviceAssignment select_device(const Communicator& comm, const DeviceSelectOptions& options = {});

}  // namespace coyote::mpi
