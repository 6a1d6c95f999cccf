// coyote-mpi benchmarks: shared main (MPI once, rank-0 reporting, run context) and helpers.
#include "bench_support.hpp"

#include <hwloc.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <coyote/cBench.hpp>
#include <coyote/error.hpp>

#include "backend/sim/net/tcp/congestion.hpp"
#include "detail/settings.hpp"
#include "support/bench_args.hpp"
#include "support/peer_watch.hpp"

#ifndef COYOTE_BENCH_VERSION
#define COYOTE_BENCH_VERSION "unknown"
#endif

namespace coyote::bench {
namespace {

namespace settings = ::coyote::detail::settings;

const settings::Text k_die_at{"COYOTE_BENCH_DIE_AT", "bench", "",
                             "<rank>:<iteration>: that rank kills itself (SIGKILL) at that timed iteration (tests "
                             "of a lost peer)"};
const settings::Flag k_inject_corruption{"COYOTE_BENCH_INJECT_CORRUPTION", "bench", false,
                                         "damage one received byte before verifying (tests that a mismatch fails)"};

int g_rank = 0;
int g_size = 1;
int g_failures = 0;
std::optional<SuiteSpec> g_suite;
std::map<std::string, double> g_baselines;
std::map<std::string, std::string> g_context;

/// Reporter of ranks other than 0: prints nothing.
class NullReporter final : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string read_file_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

/// Whether /proc/cpuinfo shows the hypervisor flag.
bool running_in_vm() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) return line.find(" hypervisor") != std::string::npos;
    return false;
}

/// Cores, PUs and NUMA nodes of this host from hwloc ("?" when hwloc fails).
std::string topology_summary(int& cores, int& numa) {
    hwloc_topology_t topo = nullptr;
    cores = 0;
    numa = 0;
    int pus = 0;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0) {
            cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
            pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
            numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        }
        hwloc_topology_destroy(topo);
    }
    return std::to_string(cores) + " cores, " + std::to_string(pus) + " PUs, " + std::to_string(numa) +
           " NUMA node(s)";
}

/// Number of distinct nodes (shared-memory domains) among the ranks.
int count_nodes() {
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int local = 0;
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    int leader = local == 0 ? 1 : 0;
    int nodes = 0;
    MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return nodes;
}

void fill_context() {
    g_context.emplace("suite", g_suite->name);
    g_context.emplace("backend", settings::value_of("COYOTE_BACKEND").value_or("sim"));
    g_context.emplace("ranks", std::to_string(g_size));
    g_context.emplace("nodes", std::to_string(count_nodes()));
    g_context.emplace("wire", g_suite->wire.empty() ? "none" : g_suite->wire);
    if (g_suite->wire.find("tcp") != std::string::npos) {
        try { // what the TCP wire's connections use (COYOTE_SIM_WIRE_CONGESTION)
            g_context.emplace("tcp_congestion_control", coyote::detail::sim::net::wire_congestion());
        } catch (const coyote::Error& e) {
            g_context.emplace("tcp_congestion_control", std::string("unusable: ") + e.what());
        }
    }
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    g_context.emplace("host", host);
    int cores = 0;
    int numa = 0;
    g_context.emplace("topology", topology_summary(cores, numa));
    g_context.emplace("cores", std::to_string(cores));
    g_context.emplace("numa_nodes", std::to_string(numa));
    g_context.emplace("virtual_machine", running_in_vm() ? "yes" : "no");
    g_context.emplace("load_average", read_file_line("/proc/loadavg"));
    g_context.emplace("coyote_mpi_version", COYOTE_BENCH_VERSION);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(lib, &len);
    g_context.emplace("mpi_library", first_line(lib));
}

/// Returns argv with a default --benchmark_min_time in front of the user's flags (the last one wins), and
/// --benchmark_out redirected to /dev/null on ranks other than 0.
std::vector<char*> prepare_args(int argc, char** argv, std::vector<std::string>& storage) {
    storage.clear();
    storage.emplace_back(argc > 0 ? argv[0] : "bench");
    storage.emplace_back("--benchmark_min_time=0.1");
    for (std::string a : with_default_color(argc, argv)) {
        if (g_rank != 0 && a.rfind("--benchmark_out=", 0) == 0) a = "--benchmark_out=/dev/null";
        storage.push_back(a);
    }
    std::vector<char*> out;
    for (auto& s : storage) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

/// Runs `fn` on every rank; true when it succeeded everywhere (failures printed by the failing rank).
template <typename Fn>
bool collective_step(const char* what, Fn&& fn) {
    int ok = 1;
    try {
        fn();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s (rank %d): %s failed: %s\n", g_suite->name.c_str(), g_rank, what, e.what());
        std::fflush(stderr);
        ok = 0;
    }
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all == 1;
}

/// "needs exactly 2 MPI ranks", "needs at least 2 MPI ranks", "needs 2 to 4 MPI ranks".
std::string ranks_text(const Ranks& r) {
    if (r.max == r.min) return "needs exactly " + std::to_string(r.min) + " MPI rank" + (r.min == 1 ? "" : "s");
    if (r.max <= 0) return "needs at least " + std::to_string(r.min) + " MPI ranks";
    return "needs " + std::to_string(r.min) + " to " + std::to_string(r.max) + " MPI ranks";
}

int run_main(int argc, char** argv) {
    if (!g_suite) {
        std::fprintf(stderr, "benchmark binary without define_suite()\n");
        return 2;
    }
    const ArgCheck check = check_args(argc, argv);
    if (check.help) {
        if (g_rank == 0)
            print_usage(stdout, argc > 0 ? argv[0] : "bench", ranks_text(g_suite->ranks) + "\n" + bench_settings_notes());
        return 0;
    }
    if (!check.error.empty()) {
        if (g_rank == 0) std::fprintf(stderr, "%s: %s\n", g_suite->name.c_str(), check.error.c_str());
        return 2;
    }
    if (g_size < g_suite->ranks.min || (g_suite->ranks.max > 0 && g_size > g_suite->ranks.max)) {
        if (g_rank == 0)
            std::fprintf(stderr, "%s: %s, got %d (run it under mpiexec -n <ranks>)\n", g_suite->name.c_str(),
                         ranks_text(g_suite->ranks).c_str(), g_size);
        return 2;
    }
    // The benchmarks run on the sim backend unless told otherwise.
    ::setenv("COYOTE_BACKEND", "sim", 0);

    std::vector<std::string> storage;
    std::vector<char*> args = prepare_args(argc, argv, storage);
    int n_args = static_cast<int>(args.size()) - 1;
    benchmark::Initialize(&n_args, args.data());
    if (benchmark::ReportUnrecognizedArguments(n_args, args.data())) return 2;

    fill_context();
    (void)inject_corruption(); // a malformed value ends the run before it starts
    if (g_suite->setup && !collective_step("setup", g_suite->setup)) return 1;
    for (const auto& [key, value] : g_context) benchmark::AddCustomContext(key, value);

    std::size_t ran = 0;
    std::string report_failure;
    if (g_rank == 0) {
        ran = run_checked(storage, report_failure);
    } else {
        NullReporter display;
        NullReporter file;
        // A file reporter is only accepted together with --benchmark_out (redirected to /dev/null above).
        const bool has_out = !flag_value(storage, "--benchmark_out").empty();
        ran = has_out ? benchmark::RunSpecifiedBenchmarks(&display, &file) : benchmark::RunSpecifiedBenchmarks(&display);
    }
    benchmark::Shutdown();
    bool ok = true;
    if (g_suite->teardown) ok = collective_step("teardown", g_suite->teardown);
    int failures = g_failures;
    int worst = 0;
    MPI_Allreduce(&failures, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (worst > 0 && g_rank == 0)
        std::fprintf(stderr, "%s: %d benchmark(s) failed (see the errors above)\n", g_suite->name.c_str(), worst);
    // A filter that matches nothing is an error too (except when only listing).
    if (ran == 0 && !listing_only(storage)) {
        if (g_rank == 0) std::fprintf(stderr, "%s: no benchmark ran\n", g_suite->name.c_str());
        return 1;
    }
    if (!report_failure.empty()) {
        std::fprintf(stderr, "%s: %s\n", g_suite->name.c_str(), report_failure.c_str());
        return 1;
    }
    return worst > 0 || !ok ? 1 : 0;
}

}  // namespace

LocalBuffers::LocalBuffers(coyote::CoyoteAllocType type, uint32_t bytes)
    : thread_(std::make_unique<coyote::cThread>(0, ::getpid())),
      src_(static_cast<uint8_t*>(thread_->getMem({type, bytes}))),
      dst_(static_cast<uint8_t*>(thread_->getMem({type, bytes}))) {}

LocalBuffers::~LocalBuffers() {
    thread_->freeMem(src_);
    thread_->freeMem(dst_);
}

bool define_suite(SuiteSpec spec, std::function<void()> setup, std::function<void()> teardown) {
    spec.setup = std::move(setup);
    spec.teardown = std::move(teardown);
    g_suite = std::move(spec);
    return true;
}

int rank() noexcept { return g_rank; }
int size() noexcept { return g_size; }

void set_context(const std::string& key, const std::string& value) { g_context[key] = value; }

void fail(benchmark::State& state, const std::string& message) {
    ++g_failures;
    state.SkipWithError(message.c_str());
}

bool inject_corruption() { return k_inject_corruption.get(); }

bool verify(benchmark::State& state, bool local_ok, const std::string& what) {
    int bad = local_ok ? 0 : g_rank + 1;
    if (!local_ok) detail::report_local_failure(what);
    int worst = bad;
    if (g_size > 1) MPI_Allreduce(&bad, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (worst == 0) return true;
    fail(state, "verification failed on rank " + std::to_string(worst - 1) + ": " + what);
    return false;
}

namespace detail {
void reduce_iteration(double& seconds, double& failed_rank) {
    double in[2] = {seconds, failed_rank};
    double out[2] = {0.0, 0.0};
    MPI_Allreduce(in, out, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    seconds = out[0];
    failed_rank = out[1];
}

void abort_lost_peer(const std::string& message) {
    report_local_failure("failed with " + std::to_string(g_size) + " ranks, a peer may be lost: aborting the job "
                         "instead of entering a collective: " + message);
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3); // MPI_Abort does not return; in case it does
}

void maybe_die() {
    static uint64_t iteration = 0;
    ++iteration;
    static const std::pair<int, uint64_t> at = [] {
        const std::string v = k_die_at.get();
        if (v.empty()) return std::pair<int, uint64_t>{-1, 0};
        int r = -1;
        unsigned long long it = 0;
        char extra = 0;
        if (std::sscanf(v.c_str(), "%d:%llu%c", &r, &it, &extra) != 2 || r < 0 || it == 0)
            throw coyote::Error(coyote::make_error_code(coyote::Errc::invalid_argument), "COYOTE_BENCH_DIE_AT",
                                "'" + v + "' is not <rank>:<iteration> (iteration from 1)");
        std::fprintf(stderr, "bench rank %d pid %d\n", g_rank, static_cast<int>(::getpid()));
        return std::pair<int, uint64_t>{r, static_cast<uint64_t>(it)};
    }();
    if (at.first == g_rank && at.second == iteration) {
        std::fprintf(stderr, "rank %d: dying at iteration %llu (COYOTE_BENCH_DIE_AT)\n", g_rank,
                     static_cast<unsigned long long>(iteration));
        std::fflush(stderr);
        ::raise(SIGKILL);
    }
}

void report_local_failure(const std::string& message) {
    std::fprintf(stderr, "%s (rank %d): %s\n", g_suite ? g_suite->name.c_str() : "bench", g_rank, message.c_str());
    std::fflush(stderr);
}
}  // namespace detail

double median(const std::vector<double>& samples) { return coyote::detail::nearest_rank_percentile(samples, 50.0); }

void latency_counters(benchmark::State& state, const std::vector<double>& samples, double divisor) {
    if (samples.empty()) return;
    const double scale = 1e6 / divisor;
    state.counters["p50_us"] = coyote::detail::nearest_rank_percentile(samples, 50.0) * scale;
    state.counters["p95_us"] = coyote::detail::nearest_rank_percentile(samples, 95.0) * scale;
    state.counters["p99_us"] = coyote::detail::nearest_rank_percentile(samples, 99.0) * scale;
}

void throughput_counters(benchmark::State& state, int64_t bytes, int64_t messages) {
    if (bytes > 0) state.SetBytesProcessed(state.iterations() * bytes);
    state.SetItemsProcessed(state.iterations() * messages);
}

void record_baseline(const std::string& key, double seconds) { g_baselines[key] = seconds; }

double ratio_counter(benchmark::State& state, const std::string& name, const std::string& key, double seconds) {
    const auto it = g_baselines.find(key);
    if (it == g_baselines.end() || !(seconds > 0.0)) return std::nan("");
    const double r = it->second / seconds;
    state.counters[name] = r;
    return r;
}

}  // namespace coyote::bench

int main(int argc, char** argv) {
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        std::fprintf(stderr, "MPI_Init_thread failed\n");
        return 2;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &coyote::bench::g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &coyote::bench::g_size);
    int rc = 2;
    coyote::bench::detail::start_peer_watch(); // a dead rank on this host ends this one (no collective waits)
    try {
        rc = coyote::bench::run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", coyote::bench::g_rank, e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    coyote::bench::detail::stop_peer_watch();
    MPI_Barrier(MPI_COMM_WORLD); // no rank exits while another still watches it
    MPI_Finalize();
    return rc;
}
