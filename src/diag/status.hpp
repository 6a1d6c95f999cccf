// coyote-mpi diagnostics: the per-process status segment (owner-only shm) that the stall doctor writes and
// coyote-info -v reads: per cThread, the commands posted and completed per class, the counter being polled,
// when anything last moved, the queue pair and its peer, and the last diagnosis.
//
// Segment: /dev/shm/coyote-sim.<uid>.<pid>.diag (mode 0600), created on the first cThread of a process, unlinked
// at exit; the sim backend's reclaim removes it when its process died (same naming rule as the sim segments).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <coyote/cDefs.hpp>

#include "detail/handles.hpp"

namespace coyote::detail::diag {

inline constexpr uint64_t k_status_magic = 0x4741494454594f43ULL; // "COYTDIAG"
inline constexpr uint32_t k_status_version = 2;
/// cThreads per process the segment describes (later ones run without a slot: no diagnosis from outside).
inline constexpr uint32_t k_max_slots = 64;
/// Completion classes (CmplClass order: local_read, local_write, rdma_read, rdma_write).
inline constexpr uint32_t k_classes = 4;
/// Bytes of the last diagnosis kept per slot.
inline constexpr uint32_t k_cause_size = 240;
/// No class polled yet.
inline constexpr uint32_t k_no_class = 0xFFFFFFFFu;

/// One side of a queue pair as published.
struct QpSide {
    uint32_t qpn = 0, psn = 0, rkey = 0, ip = 0;
    uint64_t vaddr = 0;
};

/// One cThread. Single writer (its owner process); readers copy fields one by one (values are advisory).
struct StatusSlot {
    std::atomic<uint32_t> in_use{0};
    uint32_t device = 0;
    int32_t vfid = 0;
    int32_t ctid = 0;
    char backend[8] = {};
    /// Commands posted, per class of the counter their completion bumps (cmpl_class_of).
    std::atomic<uint64_t> posted[k_classes]{};
    /// Completion counters as last read by the doctor (every few thousand polls and at each diagnosis).
    std::atomic<uint32_t> completed[k_classes]{};
    std::atomic<uint32_t> polled_class{k_no_class};
    std::atomic<uint32_t> polled_value{0};
    std::atomic<uint64_t> checks{0};          ///< slow-path checks so far
    std::atomic<int64_t> last_progress_ns{0}; ///< monotonic_ns() of the last change seen
    std::atomic<int64_t> opened_ns{0};        ///< monotonic_ns() when the slot was taken (its cThread opened)
    std::atomic<int64_t> last_check_ns{0};
    std::atomic<uint32_t> waiting_post{0};    ///< 1 while an invoke waits for a full command FIFO
    std::atomic<uint32_t> has_qp{0};
    QpSide local{};
    QpSide remote{};
    int32_t peer_pid = 0;                     ///< 0: unknown (other host, or the backend cannot tell)
    uint32_t peer_device = 0;
    int32_t peer_vfid = 0, peer_ctid = 0;
    uint64_t peer_start_time = 0;
    char peer_nic[64] = {};                   ///< sim: the peer NIC's shm segment (rejection counters)
    std::atomic<uint32_t> diagnoses{0};
    char cause[k_cause_size] = {};            ///< the last diagnosis' cause line (NUL-terminated)
};

/// The segment of one process.
struct StatusSegment {
    uint64_t magic = 0;
    uint32_t version = 0, uid = 0;
    uint64_t start_time = 0;
    int32_t pid = 0;
    uint32_t slots_used = 0;
    StatusSlot slots[k_max_slots];
};

/// CLOCK_MONOTONIC_COARSE nanoseconds (the same time base in every process, timer-tick resolution).
int64_t monotonic_ns() noexcept;

/// The slot for a new cThread of this process, or null when the segment cannot be created or is full (the
/// doctor then works in-process only). Never throws.
StatusSlot* acquire_slot(uint32_t device, int32_t vfid, int32_t ctid, const char* backend) noexcept;
/// Frees a slot returned by acquire_slot (null is ignored).
void release_slot(StatusSlot* slot) noexcept;

/// A copy of another (or this) process's segment.
struct ProcessStatus {
    int32_t pid = 0;
    uint64_t start_time = 0;
    bool alive = false;
    std::vector<std::pair<uint32_t, const StatusSlot*>> slots; ///< index and slot, in use ones only
    ShmSegment seg;                                            ///< keeps the mapping
};

/// The status segment of `pid` of this user, mapped (nullopt if none or unreadable).
std::optional<ProcessStatus> open_process(int32_t pid) noexcept;
/// Every status segment of this user in /dev/shm.
std::vector<ProcessStatus> open_all() noexcept;

/// Name of completion class `cls` ("LOCAL_READ", "LOCAL_WRITE", "RDMA_READ", "RDMA_WRITE").
const char* class_name(uint32_t cls) noexcept;

}  // namespace coyote::detail::diag
