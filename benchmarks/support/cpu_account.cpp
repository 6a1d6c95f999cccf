// Per-run CPU accounting of the benchmarks (see cpu_account.hpp).
#include "support/cpu_account.hpp"

#include <fcntl.h>
#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace coyote::bench {

namespace {

int64_t clock_ns(clockid_t id) noexcept {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// The calling thread's schedstat descriptor (opened once per thread; -1 when the kernel has none).
int schedstat_fd() noexcept {
    thread_local const int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    return fd;
}

}  // namespace

CpuSnapshot cpu_snapshot() noexcept {
    CpuSnapshot s;
    char buf[96] = {};
    if (const int fd = schedstat_fd(); fd >= 0 && ::pread(fd, buf, sizeof buf - 1, 0) > 0) {
        long long on_cpu = 0, delay = 0;
        if (std::sscanf(buf, "%lld %lld", &on_cpu, &delay) == 2) s.run_delay_ns = delay;
    }
    s.thread_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    s.process_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    return s;
}

RunCpu run_cpu(const CpuSnapshot& before, const CpuSnapshot& after) noexcept {
    const int64_t own = after.thread_cpu_ns - before.thread_cpu_ns;
    const int64_t all = after.process_cpu_ns - before.process_cpu_ns;
    return {static_cast<double>(after.run_delay_ns - before.run_delay_ns) * 1e-9,
            static_cast<double>(all > own ? all - own : 0) * 1e-9};
}

bool ranks_pinned_apart() {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    const bool known = ::sched_getaffinity(0, sizeof mine, &mine) == 0;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int n = 1;
    MPI_Comm_size(node, &n);
    std::vector<cpu_set_t> sets(static_cast<std::size_t>(n));
    MPI_Allgather(&mine, sizeof mine, MPI_BYTE, sets.data(), sizeof mine, MPI_BYTE, node);
    int ok = known ? 1 : 0;
    for (int a = 0; a < n && ok; ++a)
        for (int b = a + 1; b < n && ok; ++b) {
            cpu_set_t both;
            CPU_AND(&both, &sets[static_cast<std::size_t>(a)], &sets[static_cast<std::size_t>(b)]);
            if (CPU_COUNT(&both) != 0) ok = 0;
        }
    MPI_Comm_free(&node);
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return ok == 1;
}

std::vector<std::vector<RunCpu>> gather_run_cpu(const std::vector<RunCpu>& mine) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const int count = static_cast<int>(mine.size() * 2);
    std::vector<double> flat;
    for (const RunCpu& r : mine) flat.insert(flat.end(), {r.waited_s, r.others_cpu_s});
    std::vector<double> all(rank == 0 ? flat.size() * static_cast<std::size_t>(size) : 0);
    MPI_Gather(flat.data(), count, MPI_DOUBLE, all.data(), count, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    std::vector<std::vector<RunCpu>> out;
    if (rank != 0) return out;
    for (int r = 0; r < size; ++r) {
        std::vector<RunCpu> runs(mine.size());
        for (std::size_t i = 0; i < mine.size(); ++i)
            runs[i] = {all[(static_cast<std::size_t>(r) * mine.size() + i) * 2],
                       all[(static_cast<std::size_t>(r) * mine.size() + i) * 2 + 1]};
        out.push_back(std::move(runs));
    }
    return out;
}

bool preempted_by_others(const std::vector<std::vector<RunCpu>>& all, std::size_t run, double lost_s,
                         bool pinned_apart) noexcept {
    if (!pinned_apart) return false;
    for (const auto& rank : all) {
        if (run >= rank.size()) continue;
        const RunCpu& c = rank[run];
        if (c.waited_s >= 0.5 * lost_s && c.others_cpu_s <= 0.1 * c.waited_s) return true;
    }
    return false;
}

}  // namespace coyote::bench
