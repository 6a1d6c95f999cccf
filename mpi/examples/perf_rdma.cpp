// coyote-mpi RDMA perf sweep, bootstrapped by MPI: any even number of ranks, rank i pairs with i + N/2
// (the lower rank of a pair drives). For each size: WRITE throughput, READ throughput and WRITE ping-pong
// latency, with the payload verified after every throughput run. Rank 0 prints per-pair and aggregate rows.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_perf_rdma [--min 64] [--max 1048576] [--reps 200]
#include <coyote/mpi/mpi.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "example_support.hpp"
#include "rdma_bench_common.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

namespace {

struct Args {
    uint64_t min = 64;
    uint64_t max = 1u << 20;
    uint32_t reps = 200;
};

Args parse(int argc, char** argv) {
    const Options opts(argc, argv, "perf_rdma", {"--min", "--max", "--reps"});
    Args a;
    a.min = opts.size("--min", a.min);
    a.max = opts.size("--max", a.max);
    a.reps = static_cast<uint32_t>(opts.count("--reps", static_cast<int>(a.reps)));
    if (a.min > a.max || a.max > (64ull << 20))
        throw_error(Errc::invalid_argument, "perf_rdma", "need --min <= --max <= 64 MiB");
    return a;
}

/// One measured size of one pair (sent to rank 0).
struct Sample {
    double write_mibps, read_mibps, lat_us;
    uint64_t bad_bytes;
};

int run(const Args& args) {
    Communicator comm;
    const int n = comm.size();
    if (n < 2 || n % 2 != 0)
        throw_error(Errc::invalid_argument, "perf_rdma", "needs an even number of ranks, got " + std::to_string(n));
    const int me = comm.rank();
    const int half = n / 2;
    const int peer = me < half ? me + half : me - half;
    const bool client = me < half;

    const auto dev = select_device(comm);
    (void)bind_to_fpga(dev.device, me);
    WiringOptions wo;
    wo.buffer_size = 2 * args.max;  // source at 0, destination at max
    wo.pattern = PeerPattern::explicit_list;
    wo.peers = {peer};
    QpSet qps(comm, dev, wo);
    cThread& t = qps.thread(peer);
    auto* buf = static_cast<uint8_t*>(qps.buffer(peer));
    const uint64_t dst = args.max;

    std::vector<uint64_t> sizes;
    for (uint64_t s = args.min; s <= args.max; s *= 4) sizes.push_back(s);
    if (sizes.back() != args.max) sizes.push_back(args.max);

    if (me == 0)
        std::printf("coyote-mpi perf_rdma: %d ranks, %d pairs (rank i <-> i+%d), backend %s, reps %u\n", n, half, half,
                    dev.backend.c_str(), args.reps);
    uint64_t total_bad = 0;
    for (uint64_t size : sizes) {
        const auto len = static_cast<uint32_t>(size);
        const uint32_t iters = iterations_for(size, args.reps);
        const auto seed = static_cast<uint32_t>(size & 0xFFFF) + 1;
        Sample s{0, 0, 0, 0};
        // WRITE: the client's pattern must land in the server's destination region.
        if (client) fill(buf, size, seed);
        std::memset(buf + dst, 0, size);
        s.write_mibps = rdma_write_mibps(t, comm, peer, client, len, dst, iters);
        if (!client) s.bad_bytes += mismatches(buf + dst, size, seed);
        // READ: the client reads the server's pattern into its destination region.
        if (!client) fill(buf, size, seed + 1);
        std::memset(buf + dst, 0, size);
        conn_sync(comm, peer);
        s.read_mibps = rdma_read_mibps(t, comm, peer, client, len, dst, iters);
        if (client) s.bad_bytes += mismatches(buf + dst, size, seed + 1);
        s.lat_us = rdma_latency_us(t, comm, peer, client, len, dst, iterations_for(size, args.reps / 2 + 1));

        std::vector<Sample> all(static_cast<std::size_t>(n));
        check_mpi(MPI_Gather(&s, sizeof(s), MPI_BYTE, all.data(), sizeof(s), MPI_BYTE, 0, comm.get()), "MPI_Gather",
                  "results");
        if (me == 0) {
            double wsum = 0, rsum = 0, lsum = 0;
            uint64_t bad = 0;
            for (int p = 0; p < half; ++p) {
                const Sample& c = all[static_cast<std::size_t>(p)];
                const Sample& v = all[static_cast<std::size_t>(p + half)];
                bad += c.bad_bytes + v.bad_bytes;
                wsum += c.write_mibps;
                rsum += c.read_mibps;
                lsum += c.lat_us;
                std::printf("  pair %2d<->%-2d %9llu B  write %10.1f MiB/s  read %10.1f MiB/s  lat %9.2f us  %s\n", p,
                            p + half, static_cast<unsigned long long>(size), c.write_mibps, c.read_mibps, c.lat_us,
                            c.bad_bytes + v.bad_bytes == 0 ? "verified" : "MISMATCH");
            }
            if (half > 1)
                std::printf("  all pairs    %9llu B  write %10.1f MiB/s  read %10.1f MiB/s  lat %9.2f us (mean)\n",
                            static_cast<unsigned long long>(size), wsum, rsum, lsum / half);
            total_bad += bad;
        }
    }
    check_mpi(MPI_Bcast(&total_bad, 1, MPI_UINT64_T, 0, comm.get()), "MPI_Bcast", "verdict");
    if (me == 0) std::printf("%s\n", total_bad == 0 ? "all payloads verified" : "VERIFICATION FAILED");
    barrier(comm);
    return total_bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    constexpr const char* usage =
        "usage: mpirun -np <even ranks> coyote_mpi_perf_rdma [--min 64] [--max 1048576] [--reps 200]\n"
        "  --min / --max: bytes, 1 .. 64M, K/M/G suffixes (sizes x4 from --min, then --max); --reps: >= 1\n";
    return run_example(argc, argv, "perf_rdma", usage,
                       [](int argc_, char** argv_) { return run(parse(argc_, argv_)); });
}
