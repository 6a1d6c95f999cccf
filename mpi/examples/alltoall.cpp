// coyote-mpi example: alltoall over FPGA RDMA (each rank sends block j to rank j), verified, timed next to
// MPI_Alltoall.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_alltoall [--max 4M] [--iters 10]
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <cstdio>
#include <vector>

#include "example_support.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

namespace {

/// Element (block j, index i) sent by rank r: a value naming all three.
uint32_t value(int r, int j, uint64_t i) {
    return static_cast<uint32_t>(r) << 24 ^ static_cast<uint32_t>(j) << 16 ^ static_cast<uint32_t>(i);
}

int run(int argc, char** argv) {
    const auto [max_block, iters] = sweep_options(argc, argv, "alltoall", 4u << 20, 4);
    Communicator comm;
    Collectives coll(comm, select_device(comm));
    const int n = comm.size();
    const int me = comm.rank();
    const auto un = static_cast<uint64_t>(n);
    uint64_t wrong_total = 0;
    if (me == 0)
        std::printf("# coyote-mpi alltoall: %d ranks\n# %12s %-9s %11s %11s %9s %7s\n", n, "block(B)", "algorithm",
                    "time(us)", "MPI(us)", "busbw", "#wrong");
    for (uint64_t block = 4; block <= max_block; block *= 16) {
        const uint64_t cnt = block / 4;
        std::vector<uint32_t> send(cnt * un), recv(cnt * un, 0), ref(cnt * un);
        for (int j = 0; j < n; ++j)
            for (uint64_t i = 0; i < cnt; ++i) send[static_cast<uint64_t>(j) * cnt + i] = value(me, j, i);
        const double t =
            time_max_us(comm, 1, iters, [&] { coll.alltoall(send.data(), recv.data(), cnt, Datatype::uint32); });
        uint64_t wrong = 0;
        for (int r = 0; r < n; ++r)
            for (uint64_t i = 0; i < cnt; ++i) wrong += recv[static_cast<uint64_t>(r) * cnt + i] != value(r, me, i);
        const uint64_t all = sum_over_ranks(comm, wrong, "alltoall check");
        wrong_total += all;
        const double tm = time_max_us(comm, 1, iters, [&] {
            check_mpi(MPI_Alltoall(send.data(), static_cast<int>(cnt), MPI_UINT32_T, ref.data(), static_cast<int>(cnt),
                                   MPI_UINT32_T, comm.get()),
                      "MPI_Alltoall");
        });
        if (me == 0)
            std::printf("  %12llu %-9s %11.2f %11.2f %9.3f %7llu\n", static_cast<unsigned long long>(block),
                        coll.last_algorithm().c_str(), t, tm,
                        static_cast<double>(block * un) / (t * 1e3) * (n - 1) / n, static_cast<unsigned long long>(all));
    }
    if (me == 0) std::printf("Result: %s\n", wrong_total == 0 ? "all alltoall results verified" : "VERIFICATION FAILED");
    return wrong_total == 0 ? 0 : 1;
}

}  // namespace

constexpr const char* k_usage =
    "usage: mpirun -np <ranks> coyote_mpi_alltoall [--max 4M] [--iters 10]\n"
    "  --max: largest block per rank pair in bytes, 4 .. 1G, K/M/G suffixes; blocks 4, 64, 1K, ... (x16)\n"
    "  --iters: timed calls per size, >= 1\n";

int main(int argc, char** argv) { return run_example(argc, argv, "alltoall", k_usage, run); }
