// Where a slow run's time went, per rank: how long the timing thread waited for a CPU (the kernel's run delay)
// and how much CPU this process's other threads used meanwhile. A run that lost its time waiting for a core that
// no thread of ours took was preempted by another process or the kernel: machine noise, not the runtime's.
#pragma once

#include <cstdint>
#include <vector>

namespace coyote::bench {

/// The calling thread's run delay and CPU time, and its process's CPU time (nanoseconds).
struct CpuSnapshot {
    int64_t run_delay_ns = 0;
    int64_t thread_cpu_ns = 0;
    int64_t process_cpu_ns = 0;
};

/// What one run cost a rank beyond its own thread's work.
struct RunCpu {
    double waited_s = 0;        ///< the timing thread was runnable but off its core
    double others_cpu_s = 0;    ///< CPU used by the other threads of this process
};

/// Snapshot of the calling thread (reads /proc/thread-self/schedstat through a descriptor kept open per thread).
CpuSnapshot cpu_snapshot() noexcept;
/// The cost of a run between two snapshots of the same thread.
RunCpu run_cpu(const CpuSnapshot& before, const CpuSnapshot& after) noexcept;

/// Collective over MPI_COMM_WORLD: true when no two ranks of this node may run on one CPU (each rank is bound to
/// CPUs of its own, as mpirun's default binding for 2 ranks does); only then can a rank's wait for a CPU not be a
/// peer rank's doing.
bool ranks_pinned_apart();

/// Collective: every rank's per-run costs, on rank 0 (indexed [rank][run]; empty elsewhere). Every rank passes
/// as many runs.
std::vector<std::vector<RunCpu>> gather_run_cpu(const std::vector<RunCpu>& mine);

/// A slow run was machine noise when some rank lost at least half of `lost_s` waiting for a CPU while the other
/// threads of its process used at most a tenth of that wait (and the ranks are pinned apart).
bool preempted_by_others(const std::vector<std::vector<RunCpu>>& all, std::size_t run, double lost_s,
                         bool pinned_apart) noexcept;

}  // namespace coyote::bench
