// coyote-mpi sim backend: state of one sim vFPGA that other processes may touch (the emulated NIC of a
// peer increments our completion counters). Lives in a POSIX shm segment created by the owning process:
//   /coyote-sim.<uid>.<pid>.d<device>v<vfid>.state
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include <coyote/cDefs.hpp>

namespace coyote::detail::sim {

inline constexpr uint64_t k_state_magic = 0x434f594f54455354ULL; // "COYOTEST"
inline constexpr uint32_t k_state_version = 1;
/// Bytes reserved for the net engine's area after the (page-rounded) header; see net_offset / net_size.
inline constexpr uint64_t k_state_net_area_size = 1ULL << 20;

/// Header of the shared state segment; the net engine may append its own area after it
/// (use `net_offset` / `net_size`, never sizeof(SharedState), to find it).
struct SharedState {
    uint64_t magic = 0;
    uint32_t version = 0;
    int32_t owner_pid = 0;
    uint64_t owner_start_time = 0; ///< /proc/<pid>/stat field 22, to detect pid reuse
    uint32_t device = 0;
    int32_t vfid = 0;
    uint32_t ip_addr = 0;
    uint32_t pad0 = 0;
    uint64_t mac_addr = 0;
    /// Writeback counters, Coyote's layout: wback[cls * N_CTID_MAX + ctid].
    alignas(64) std::atomic<uint32_t> wback[N_WBACKS * N_CTID_MAX];
    /// Where the net engine's area starts in the segment and how large it is (0 if none).
    uint64_t net_offset = 0;
    uint64_t net_size = 0;
};

static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared counters need lock-free atomics");

}  // namespace coyote::detail::sim
