// Per-run CPU accounting of the benchmarks (see cpu_account.hpp).
#include "support/cpu_account.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <mpi.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <ctime>
#include <cstdio>
#include <string>

namespace coyote::bench {

namespace {

/// The runtime's thread names (pthread_setname_np); index 0: any other thread, the last: another runtime thread.
constexpr const char* k_thread_kinds[] = {"an unnamed thread (the program's or MPI's)",
                                          "coyote-vfpga",
                                          "coyote-accept",
                                          "coyote-wire-tx",
                                          "coyote-wire-rx",
                                          "coyote-lanes",
                                          "coyote-irq",
                                          "coyote-watchdog",
                                          "coyote-sigusr1",
                                          "coyote-sreader",
                                          "coyote-sreply",
                                          "another coyote thread"};
constexpr int k_last_kind = static_cast<int>(std::size(k_thread_kinds)) - 1;

/// The kind of the thread whose /proc/self/task entry is `tid`.
uint8_t thread_kind(const char* tid) {
    char name[32] = {};
    const std::string path = std::string("/proc/self/task/") + tid + "/comm";
    if (FILE* f = std::fopen(path.c_str(), "r")) {
        if (std::fgets(name, sizeof name, f) == nullptr) name[0] = '\0';
        std::fclose(f);
    }
    std::string n = name;
    if (!n.empty() && n.back() == '\n') n.pop_back();
    for (int k = 1; k < k_last_kind; ++k)
        if (n == k_thread_kinds[k]) return static_cast<uint8_t>(k);
    return n.rfind("coyote-", 0) == 0 ? k_last_kind : 0;
}

}  // namespace

const char* thread_kind_name(int kind) noexcept {
    return kind >= 0 && kind <= k_last_kind ? k_thread_kinds[kind] : k_thread_kinds[0];
}

ThreadAccounts::~ThreadAccounts() {
    for (int fd : fds_) ::close(fd);
}

void ThreadAccounts::refresh() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    kinds_.clear();
    self_ = -1;
    const std::string me = std::to_string(::gettid());
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) return;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        const std::string path = std::string("/proc/self/task/") + e->d_name + "/schedstat";
        if (const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
            if (me == e->d_name) self_ = static_cast<int>(fds_.size());
            fds_.push_back(fd);
            kinds_.push_back(thread_kind(e->d_name));
        }
    }
    ::closedir(dir);
}

CpuSnapshot ThreadAccounts::snapshot() const {
    CpuSnapshot s;
    s.delay_ns.assign(fds_.size(), 0);
    s.cpu_ns.assign(fds_.size(), 0);
    s.kind = kinds_;
    for (std::size_t i = 0; i < fds_.size(); ++i) {
        char buf[96] = {};
        long long on_cpu = 0, delay = 0;
        if (::pread(fds_[i], buf, sizeof buf - 1, 0) > 0 && std::sscanf(buf, "%lld %lld", &on_cpu, &delay) == 2) {
            s.cpu_ns[i] = on_cpu;
            s.delay_ns[i] = delay;
        }
    }
    const auto ns = [](clockid_t clock) {
        timespec t{};
        ::clock_gettime(clock, &t);
        return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
    };
    rusage ru{};
    if (::getrusage(RUSAGE_THREAD, &ru) == 0) {
        s.self_sleeps = ru.ru_nvcsw;
        s.self_majflt = ru.ru_majflt;
    }
    s.self_cpu_ns = ns(CLOCK_THREAD_CPUTIME_ID);
    s.wall_ns = ns(CLOCK_MONOTONIC);
    s.self = self_;
    return s;
}

RunCpu ThreadAccounts::cost(const CpuSnapshot& before, const CpuSnapshot& after) noexcept {
    const std::size_t n = std::min(before.delay_ns.size(), after.delay_ns.size());
    const auto cpu_of = [&](std::size_t i) { return std::max<int64_t>(after.cpu_ns[i] - before.cpu_ns[i], 0); };
    int64_t all_cpu = 0;
    for (std::size_t i = 0; i < n; ++i) all_cpu += cpu_of(i);
    // The part of a thread's wait for its CPU that the process's other threads cannot have taken (at most all their
    // CPU time meanwhile, wherever they ran).
    int64_t best = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const int64_t waited = after.delay_ns[i] - before.delay_ns[i];
        const int64_t others = all_cpu - cpu_of(i);
        best = std::max(best, waited - others);
    }
    RunCpu c;
    c.foreign_wait_s = static_cast<double>(best) * 1e-9;
    const auto s_of = [](int64_t ns) { return static_cast<double>(ns) * 1e-9; };
    c.wall_s = s_of(after.wall_ns - before.wall_ns);
    c.self_cpu_s = s_of(after.self_cpu_ns - before.self_cpu_ns);
    c.self_sleeps = static_cast<double>(after.self_sleeps - before.self_sleeps);
    c.self_majflt = static_cast<double>(after.self_majflt - before.self_majflt);
    if (const int me = before.self; me >= 0 && me == after.self && static_cast<std::size_t>(me) < n) {
        const auto i = static_cast<std::size_t>(me);
        c.self_wait_s = s_of(after.delay_ns[i] - before.delay_ns[i]);
        c.others_cpu_s = s_of(all_cpu - cpu_of(i));
        for (std::size_t j = 0; j < n; ++j)
            if (j != i && s_of(cpu_of(j)) > c.top_other_cpu_s) {
                c.top_other_cpu_s = s_of(cpu_of(j));
                c.top_other_kind = j < after.kind.size() ? after.kind[j] : 0;
            }
    }
    if (c.self_sleeps == 0) c.frozen_s = std::max(c.wall_s - c.self_cpu_s - c.self_wait_s, 0.0);
    return c;
}

std::string RunCpu::describe() const {
    char line[200];
    std::snprintf(line, sizeof line,
                  "ran %.3f ms, waited %.3f ms for a CPU, slept %.0fx, %.0f page faults from disk; the other threads "
                  "ran %.3f ms",
                  self_cpu_s * 1e3, self_wait_s * 1e3, self_sleeps, self_majflt, others_cpu_s * 1e3);
    std::string out = line;
    if (top_other_cpu_s > 0) {
        std::snprintf(line, sizeof line, " (most: %s, %.3f ms)", thread_kind_name(static_cast<int>(top_other_kind)),
                      top_other_cpu_s * 1e3);
        out += line;
    }
    if (self_sleeps == 0 || frozen_s > 0) {
        std::snprintf(line, sizeof line, "; held off its CPU %.3f ms", frozen_s * 1e3);
        out += line;
    }
    return out;
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
    const int count = static_cast<int>(mine.size());
    constexpr int k = 10; // doubles per run
    std::vector<double> flat;
    for (const RunCpu& r : mine)
        flat.insert(flat.end(), {r.foreign_wait_s, r.wall_s, r.self_cpu_s, r.self_wait_s, r.self_sleeps, r.self_majflt,
                                 r.others_cpu_s, r.frozen_s, r.top_other_cpu_s, r.top_other_kind});
    std::vector<double> all(rank == 0 ? flat.size() * static_cast<std::size_t>(size) : 0);
    MPI_Gather(flat.data(), k * count, MPI_DOUBLE, all.data(), k * count, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    std::vector<std::vector<RunCpu>> out;
    if (rank != 0) return out;
    for (int r = 0; r < size; ++r) {
        std::vector<RunCpu> runs(mine.size());
        const double* from = all.data() + static_cast<std::size_t>(r) * flat.size();
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const double* v = from + k * i;
            runs[i] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
        }
        out.push_back(std::move(runs));
    }
    return out;
}

bool preempted_by_others(const std::vector<std::vector<RunCpu>>& all, std::size_t run, double lost_s,
                         bool pinned_apart) noexcept {
    for (const auto& rank : all) {
        if (run >= rank.size()) continue;
        // A thread held off its CPU without waiting for it lost the time to the machine, pinned or not.
        if (rank[run].frozen_s >= 0.5 * lost_s) return true;
        if (pinned_apart && rank[run].foreign_wait_s >= 0.5 * lost_s) return true;
    }
    return false;
}

}  // namespace coyote::bench
