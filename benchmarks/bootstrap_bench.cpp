// bootstrap suite: time to wire every pair of ranks with queue pairs, both ways in the same run.
//   bootstrap_tcp_oob/<ranks>   baseline: the stock TCP out-of-band exchange done pair by pair the way stock
//                               applications do it (per pair a server initRDMA(size, port) and a client
//                               initRDMA(size, port, ip), one port per pair, pairs in one global order)
//   bootstrap_qpset/<ranks>     coyote::mpi::QpSet (one MPI_Ialltoall of fixed-size slots)
//   barrier_mpi/<ranks>         baseline: MPI_Barrier on the same (duplicated) communicator
//   barrier_coyote/<ranks>      coyote::mpi::barrier: the bounded arrival step every collective bootstrap step runs
//                               first (tokens gathered by rank 0, its verdict to every rank)
// Each wiring iteration starts after a barrier and wires all N (N - 1) / 2 pairs; its time is the slowest rank's.
// A barrier iteration is k_barriers barriers back to back; its time per barrier is reported (ratio_vs_mpi_barrier).
// The queue pairs are released untimed after each iteration. Fixed iteration count (every iteration takes
// many milliseconds when ranks are oversubscribed): COYOTE_BENCH_BOOTSTRAP_ITERS (default 5).
// Every wiring is verified: each rank checks that every connection has a registered buffer and that the
// peer's published blob arrived (QpSet), and each stock pair passes connSync in both directions.
//   mpiexec -n <N> bootstrap_bench     (Open MPI as root / N > cores: --allow-run-as-root --oversubscribe)
#include "support/bench_support.hpp"

#include <coyote/mpi/mpi.hpp>

#include "detail/settings.hpp"

#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

namespace cb = coyote::bench;
namespace settings = ::coyote::detail::settings;

const settings::Integer k_iters{"COYOTE_BENCH_BOOTSTRAP_ITERS", "bench", 5, 1, 1000000,
                                "iterations of each bootstrap benchmark"};
using coyote::cThread;

constexpr uint64_t k_buffer = 4096;
constexpr int k_port_low = 10000;
constexpr int k_port_span = 18000; // below the usual ephemeral range (32768+)

std::unique_ptr<coyote::mpi::Communicator> g_comm;
coyote::mpi::DeviceAssignment g_dev;
int g_port_base = 0;
int g_port_next = 0; ///< advanced identically on every rank

int pairs() { return cb::size() * (cb::size() - 1) / 2; }

/// First port of the next iteration's range (one port per pair), wrapping inside the span.
int take_ports() {
    if (g_port_next + pairs() > k_port_span) g_port_next = 0;
    const int first = g_port_base + g_port_next;
    g_port_next += pairs();
    return first;
}

void counters(benchmark::State& state, const std::vector<double>& samples) {
    cb::latency_counters(state, samples);
    cb::throughput_counters(state, 0, 2 * pairs()); // items: queue pairs wired
    state.counters["pairs"] = pairs();
}

void bm_tcp_oob(benchmark::State& state) {
    const int n = cb::size();
    const int me = cb::rank();
    std::vector<std::unique_ptr<cThread>> threads;
    std::vector<double> samples;
    if (!cb::timed_loop(
            state, cb::Sync::barrier, samples,
            [&] {
                const int base = take_ports();
                int pair = 0;
                for (int i = 0; i < n; ++i)
                    for (int j = i + 1; j < n; ++j, ++pair) {
                        if (me != i && me != j) continue;
                        const auto port = static_cast<uint16_t>(base + pair);
                        auto t = std::make_unique<cThread>(g_dev.vfid, ::getpid(), g_dev.device);
                        void* buf = me == i ? t->initRDMA(k_buffer, port)                // server
                                            : t->initRDMA(k_buffer, port, "127.0.0.1"); // client
                        if (buf == nullptr) return false;
                        t->connSync(me == j); // both directions of the out-of-band channel work
                        threads.push_back(std::move(t));
                    }
                return threads.size() == static_cast<std::size_t>(n - 1);
            },
            [&] {
                coyote::mpi::barrier(*g_comm);
                threads.clear();
            }))
        return;
    cb::record_baseline("tcp_oob/" + std::to_string(n), cb::median(samples));
    counters(state, samples);
}

void bm_qpset(benchmark::State& state) {
    std::unique_ptr<coyote::mpi::QpSet> qps;
    coyote::mpi::WiringOptions o;
    o.buffer_size = k_buffer;
    o.pattern = coyote::mpi::PeerPattern::all;
    std::vector<double> samples;
    if (!cb::timed_loop(
            state, cb::Sync::barrier, samples,
            [&] {
                qps = std::make_unique<coyote::mpi::QpSet>(*g_comm, g_dev, o);
                if (qps->peers().size() != static_cast<std::size_t>(cb::size() - 1)) return false;
                for (int p : qps->peers()) {
                    const auto& c = qps->connection(p);
                    if (c.buffer == nullptr || c.remote_blob.empty()) return false;
                }
                return true;
            },
            [&] {
                coyote::mpi::barrier(*g_comm);
                qps.reset();
            }))
        return;
    counters(state, samples);
    cb::ratio_counter(state, "ratio_vs_tcp_oob", "tcp_oob/" + std::to_string(cb::size()), cb::median(samples));
}

constexpr int k_barriers = 200;

/// Times k_barriers calls of `barrier` per iteration (the slowest rank's time, per barrier).
template <class Barrier>
bool time_barriers(benchmark::State& state, std::vector<double>& samples, Barrier&& barrier) {
    if (!cb::timed_loop(state, cb::Sync::barrier, samples, [&] {
            for (int i = 0; i < k_barriers; ++i) barrier();
            return true;
        }))
        return false;
    cb::latency_counters(state, samples, k_barriers);
    return true;
}

void bm_barrier_mpi(benchmark::State& state) {
    std::vector<double> samples;
    if (!time_barriers(state, samples, [] {
            coyote::mpi::check_mpi(MPI_Barrier(g_comm->get()), "MPI_Barrier", "barrier_mpi");
        }))
        return;
    cb::record_baseline("barrier_mpi/" + std::to_string(cb::size()), cb::median(samples));
}

void bm_barrier_coyote(benchmark::State& state) {
    std::vector<double> samples;
    if (!time_barriers(state, samples, [] { coyote::mpi::barrier(*g_comm); })) return;
    cb::ratio_counter(state, "ratio_vs_mpi_barrier", "barrier_mpi/" + std::to_string(cb::size()),
                      cb::median(samples));
}

void setup() {
    g_comm = std::make_unique<coyote::mpi::Communicator>();
    g_dev = coyote::mpi::select_device(*g_comm);
    if (cb::rank() == 0) g_port_base = k_port_low + static_cast<int>(std::random_device{}() % 8000u);
    coyote::mpi::check_mpi(MPI_Bcast(&g_port_base, 1, MPI_INT, 0, g_comm->get()), "MPI_Bcast", "port base");
    const auto iters = k_iters.get();
    const std::string n = "/" + std::to_string(cb::size());
    benchmark::RegisterBenchmark(("bootstrap_tcp_oob" + n).c_str(), bm_tcp_oob)->Iterations(iters)->UseManualTime();
    benchmark::RegisterBenchmark(("bootstrap_qpset" + n).c_str(), bm_qpset)->Iterations(iters)->UseManualTime();
    benchmark::RegisterBenchmark(("barrier_mpi" + n).c_str(), bm_barrier_mpi)->Iterations(iters)->UseManualTime();
    benchmark::RegisterBenchmark(("barrier_coyote" + n).c_str(), bm_barrier_coyote)
        ->Iterations(iters)
        ->UseManualTime();
    cb::set_context("backend", g_dev.backend);
    cb::set_context("queue_pair_buffer", std::to_string(k_buffer));
}

void teardown() { g_comm.reset(); }

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "bootstrap", .ranks = {2, 0}, .wire = "shm (sim, one host)"}, setup, teardown);

}  // namespace
