// Where a slow run's time went, per rank: how long each thread of the process waited for a CPU (the kernel's run
// delay) and how much CPU the process's other threads used meanwhile. A thread that waited for a core that no
// other thread of ours took was preempted by another process or the kernel: machine noise, not the runtime's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coyote::bench {

/// The run delay and CPU time of each thread of this process (nanoseconds), in the order of ThreadAccounts, and of
/// the thread that took the snapshot: its CPU clock (exact, where schedstat's run time lags by up to a tick for a
/// running thread), its sleeps and major page faults so far (getrusage), and the monotonic clock.
struct CpuSnapshot {
    std::vector<int64_t> delay_ns, cpu_ns;
    std::vector<uint8_t> kind; ///< each thread's name as an index of thread_kind_name (read at refresh)
    int self = -1; ///< the taking thread's index, -1 when it was not listed
    int64_t self_cpu_ns = 0, self_sleeps = 0, self_majflt = 0, wall_ns = 0;
};

/// What one run cost a rank: the longest wait of one of its threads for a CPU less all the CPU time the process's
/// other threads used meanwhile (the part of the wait they cannot have caused), in seconds; and, to tell where a
/// slow run's time went, what the thread that took both snapshots did meanwhile.
struct RunCpu {
    double foreign_wait_s = 0;
    double wall_s = 0;         ///< between the snapshots
    double self_cpu_s = 0;     ///< the taking thread's CPU time
    double self_wait_s = 0;    ///< its wait for a CPU
    double self_sleeps = 0;    ///< its voluntary context switches (blocking system calls, futex waits, page-ins)
    double self_majflt = 0;    ///< its major page faults
    double others_cpu_s = 0;   ///< the CPU time of the process's other threads
    /// How long the taking thread was held off its CPU when it never slept: wall time neither run nor spent
    /// waiting for a CPU (a vCPU its hypervisor did not run, interrupt handling); 0 when it slept (its sleeps'
    /// length is not known).
    double frozen_s = 0;
    /// The other thread that ran longest meanwhile: its CPU time and its kind (thread_kind_name).
    double top_other_cpu_s = 0;
    double top_other_kind = 0;

    /// "ran 0.04 ms, waited 0 ms for a CPU, slept 1x, 0 page faults from disk; the other threads ran 0 ms" (and,
    /// when it never slept or frozen_s was set, "held off its CPU 0.9 ms")
    std::string describe() const;
};

/// What a thread is, by the name the runtime gives its threads ("coyote-vfpga", ...); kind 0 is any other thread
/// (the program's, MPI's).
const char* thread_kind_name(int kind) noexcept;

/// The threads of this process, each with its /proc schedstat descriptor kept open (a snapshot is one pread per
/// thread). Threads started after refresh() are not looked at until the next refresh().
class ThreadAccounts {
public:
    ThreadAccounts() = default;
    ~ThreadAccounts();
    ThreadAccounts(const ThreadAccounts&) = delete;
    ThreadAccounts& operator=(const ThreadAccounts&) = delete;

    /// Lists the threads of this process again.
    void refresh();
    /// Every listed thread's run delay and CPU time now (0 for a thread that has ended).
    CpuSnapshot snapshot() const;
    /// The cost of a run between two snapshots taken without a refresh() in between.
    static RunCpu cost(const CpuSnapshot& before, const CpuSnapshot& after) noexcept;

private:
    std::vector<int> fds_;
    std::vector<uint8_t> kinds_;
    int self_ = -1; ///< the index of the thread that called refresh()
};

/// Collective over MPI_COMM_WORLD: true when no two ranks of this node may run on one CPU (each rank is bound to
/// CPUs of its own, as mpirun's default binding for 2 ranks does); only then can a rank's wait for a CPU not be a
/// peer rank's doing.
bool ranks_pinned_apart();

/// Collective: every rank's per-run costs, on rank 0 (indexed [rank][run]; empty elsewhere). Every rank passes
/// as many runs.
std::vector<std::vector<RunCpu>> gather_run_cpu(const std::vector<RunCpu>& mine);

/// A slow run was machine noise when a thread of some rank lost at least half of `lost_s` waiting for a CPU that
/// its process's other threads did not use (and the ranks are pinned apart), or a rank's timing thread was held
/// off its CPU (frozen_s) that long.
bool preempted_by_others(const std::vector<std::vector<RunCpu>>& all, std::size_t run, double lost_s,
                         bool pinned_apart) noexcept;

}  // namespace coyote::bench
