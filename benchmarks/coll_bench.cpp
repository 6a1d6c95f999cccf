// coll_bench: coyote::mpi collectives over sim FPGA RDMA next to the MPI library's own collectives on the same
// buffers in the same run.
//   mpirun -np 2|4 [--oversubscribe --allow-run-as-root] coll_bench [--benchmark_filter=allreduce]
// For every operation and size the MPI baseline ("mpi_<op>/<size>") runs right before the coyote benchmark
// ("<op>/<size>"). Every iteration is timed on every rank and reduced with MAX (bench_support's timed_loop).
// Counters (nccl-tests definitions; size = bytes of the per-rank buffer: allreduce / broadcast the buffer,
// allgather the gathered output, reduce_scatter the input, alltoall the send buffer):
//   algbw_GBps = size / median time; busbw_GBps = algbw * factor (allreduce 2(n-1)/n, broadcast 1, allgather /
//   reduce_scatter / alltoall (n-1)/n); ratio_vs_mpi = MPI median time / coyote median time (above 1: faster),
//   where the MPI samples are taken interleaved with the coyote ones (one MPI call after every coyote iteration,
//   outside the reported time; mpi_interleaved_us is their median);
//   bytes_per_second / items_per_second (collectives per second) from the mean time, p50/p95/p99_us.
// The coyote result is compared with the MPI result after each benchmark (a mismatch fails the run).
#include "support/bench_support.hpp"

#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cb = coyote::bench;
using namespace coyote;
using namespace coyote::mpi;

namespace {

constexpr uint64_t k_max = 64ull << 20;

std::unique_ptr<Communicator> g_comm;
std::unique_ptr<Collectives> g_coll;
std::vector<float> g_in, g_ours, g_theirs;

struct Case {
    std::string name;
    double factor; ///< busbw / algbw
    std::function<void(uint64_t, float*)> coyote; ///< size in bytes, output buffer
    std::function<void(uint64_t, float*)> mpi;
    uint64_t out_bytes_div; ///< output bytes = size / this (reduce_scatter: n)
};

int ci(uint64_t c) { return static_cast<int>(c); }

std::vector<Case> cases() {
    const int n = cb::size();
    const double dn = n;
    const auto un = static_cast<uint64_t>(n);
    return {
        {"allreduce", 2.0 * (dn - 1) / dn,
         [](uint64_t b, float* out) { g_coll->allreduce(g_in.data(), out, b / 4, Datatype::float32, Op::sum); },
         [](uint64_t b, float* out) { MPI_Allreduce(g_in.data(), out, ci(b / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }, 1},
        {"broadcast", 1.0,
         [](uint64_t b, float* out) {
             if (cb::rank() == 0) std::memcpy(out, g_in.data(), b);
             g_coll->broadcast(out, b / 4, Datatype::float32, 0);
         },
         [](uint64_t b, float* out) {
             if (cb::rank() == 0) std::memcpy(out, g_in.data(), b);
             MPI_Bcast(out, ci(b / 4), MPI_FLOAT, 0, MPI_COMM_WORLD);
         },
         1},
        {"allgather", (dn - 1) / dn,
         [un](uint64_t b, float* out) { g_coll->allgather(g_in.data(), out, b / 4 / un, Datatype::float32); },
         [un](uint64_t b, float* out) {
             MPI_Allgather(g_in.data(), ci(b / 4 / un), MPI_FLOAT, out, ci(b / 4 / un), MPI_FLOAT, MPI_COMM_WORLD);
         },
         1},
        {"reduce_scatter", (dn - 1) / dn,
         [un](uint64_t b, float* out) { g_coll->reduce_scatter(g_in.data(), out, b / 4 / un, Datatype::float32, Op::sum); },
         [un](uint64_t b, float* out) {
             MPI_Reduce_scatter_block(g_in.data(), out, ci(b / 4 / un), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
         },
         un},
        {"alltoall", (dn - 1) / dn,
         [un](uint64_t b, float* out) { g_coll->alltoall(g_in.data(), out, b / 4 / un, Datatype::float32); },
         [un](uint64_t b, float* out) {
             MPI_Alltoall(g_in.data(), ci(b / 4 / un), MPI_FLOAT, out, ci(b / 4 / un), MPI_FLOAT, MPI_COMM_WORLD);
         },
         1},
    };
}

std::string key(const std::string& op, uint64_t bytes) { return op + "/" + std::to_string(bytes); }

void bw_counters(benchmark::State& state, const Case& c, uint64_t bytes, double seconds) {
    const double algbw = static_cast<double>(bytes) / seconds / 1e9;
    state.counters["algbw_GBps"] = algbw;
    state.counters["busbw_GBps"] = algbw * c.factor;
    state.counters["time_us"] = seconds * 1e6;
    cb::throughput_counters(state, static_cast<int64_t>(bytes), 1); // bytes_per_second, collectives per second
}

void bench_mpi(benchmark::State& state, const Case& c, uint64_t bytes) {
    std::vector<double> samples;
    c.mpi(bytes, g_theirs.data()); // warm-up
    if (!cb::timed_loop(state, cb::Sync::barrier, samples, [&] {
            c.mpi(bytes, g_theirs.data());
            return true;
        }))
        return;
    const double t = cb::median(samples);
    bw_counters(state, c, bytes, t);
    cb::latency_counters(state, samples);
}

void bench_coyote(benchmark::State& state, const Case& c, uint64_t bytes) {
    std::vector<double> samples, mpi_samples;
    c.coyote(bytes, g_ours.data()); // warm-up
    // After every timed iteration the MPI collective runs once more, timed the same way (barrier, MAX over the
    // ranks) but outside the reported time: ratio_vs_mpi compares interleaved samples, so a change of the
    // machine's speed during the run moves both sides alike.
    const bool multi = cb::size() > 1;
    if (!cb::timed_loop(
            state, cb::Sync::barrier, samples,
            [&] {
                c.coyote(bytes, g_ours.data());
                return true;
            },
            [&] {
                if (multi) MPI_Barrier(MPI_COMM_WORLD);
                const auto t0 = std::chrono::steady_clock::now();
                c.mpi(bytes, g_theirs.data());
                double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), failed = 0.0;
                if (multi) cb::detail::reduce_iteration(s, failed);
                mpi_samples.push_back(s);
            }))
        return;
    const double t = cb::median(samples);
    bw_counters(state, c, bytes, t);
    cb::latency_counters(state, samples);
    if (!mpi_samples.empty() && t > 0.0) {
        state.counters["ratio_vs_mpi"] = cb::median(mpi_samples) / t;
        state.counters["mpi_interleaved_us"] = cb::median(mpi_samples) * 1e6;
    }
    state.SetLabel(g_coll->last_algorithm());
    // Same result as the MPI collective (inputs are small integers: exact in any order).
    c.mpi(bytes, g_theirs.data());
    const uint64_t out = bytes / c.out_bytes_div;
    if (cb::inject_corruption() && out != 0) reinterpret_cast<unsigned char*>(g_ours.data())[0] ^= 1;
    (void)cb::verify(state, std::memcmp(g_ours.data(), g_theirs.data(), out) == 0, c.name + " result differs from MPI's");
}

void setup() {
    g_comm = std::make_unique<Communicator>(MPI_COMM_WORLD);
    const DeviceAssignment dev = select_device(*g_comm);
    g_coll = std::make_unique<Collectives>(*g_comm, dev);
    g_in.assign(k_max / 4, 0.0f);
    for (std::size_t i = 0; i < g_in.size(); ++i) g_in[i] = static_cast<float>((i + static_cast<std::size_t>(cb::rank())) % 7);
    g_ours.assign(k_max / 4, 0.0f);
    g_theirs.assign(k_max / 4, 0.0f);
    cb::set_context("collectives", "chunk " + std::to_string(g_coll->chunk_payload()) + " B x " +
                                       std::to_string(g_coll->slots()) + " slots per queue pair, " +
                                       std::to_string(g_coll->peers().size()) + " queue pairs per rank");
    static const std::vector<Case> all = cases();
    const auto n = static_cast<uint64_t>(cb::size());
    for (const Case& c : all) {
        const bool per_rank_blocks = c.name != "allreduce" && c.name != "broadcast";
        for (uint64_t b : std::vector<uint64_t>{8, 64, 512, 4096, 65536, 1ull << 20, 16ull << 20, k_max}) {
            const uint64_t bytes = per_rank_blocks ? std::max<uint64_t>(b, 4 * n) / (4 * n) * (4 * n) : b;
            benchmark::RegisterBenchmark(("mpi_" + key(c.name, bytes)).c_str(),
                                         [&c, bytes](benchmark::State& s) { bench_mpi(s, c, bytes); })
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
            benchmark::RegisterBenchmark(key(c.name, bytes).c_str(),
                                         [&c, bytes](benchmark::State& s) { bench_coyote(s, c, bytes); })
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
        }
    }
}

void teardown() {
    g_coll.reset();
    g_comm.reset();
}

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "coll", .ranks = {2, 0}, .wire = "shm"}, setup, teardown);

}  // namespace
