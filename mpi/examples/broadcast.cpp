// coyote-mpi example: broadcast over FPGA RDMA from every root, verified on every rank, timed next to MPI_Bcast.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_broadcast [--max 16M] [--iters 10]
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <cstdio>
#include <vector>

#include "example_support.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

namespace {

/// The first `bytes` of `v`: the payload root `r` broadcasts (r = -1: what the other ranks start with).
void fill_payload(std::vector<uint8_t>& v, uint64_t bytes, int r) {
    for (uint64_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(i * 31 + static_cast<uint64_t>(r) * 7);
}

int run(int argc, char** argv) {
    const auto [max_bytes, iters] = sweep_options(argc, argv, "broadcast", 16u << 20);
    std::vector<uint8_t> buf(max_bytes), ref(max_bytes);
    Communicator comm;
    Collectives coll(comm, select_device(comm));
    const int n = comm.size();
    const int me = comm.rank();
    uint64_t wrong_total = 0;
    if (me == 0)
        std::printf("# coyote-mpi broadcast: %d ranks\n# %12s %5s %-10s %11s %11s %9s %7s\n", n, "size(B)", "root",
                    "algorithm", "time(us)", "MPI(us)", "busbw", "#wrong");
    for (uint64_t bytes = 1; bytes <= max_bytes; bytes *= 16) {
        for (int root = 0; root < n; ++root) {
            fill_payload(buf, bytes, me == root ? root : -1);
            const double t =
                time_max_us(comm, 1, iters, [&] { coll.broadcast(buf.data(), bytes, Datatype::uint8, root); });
            fill_payload(ref, bytes, root);
            uint64_t wrong = 0;
            for (uint64_t i = 0; i < bytes; ++i) wrong += buf[i] != ref[i];
            const uint64_t all = sum_over_ranks(comm, wrong, "broadcast check");
            wrong_total += all;
            const double tm = time_max_us(comm, 1, iters, [&] {
                check_mpi(MPI_Bcast(ref.data(), static_cast<int>(bytes), MPI_BYTE, root, comm.get()), "MPI_Bcast");
            });
            if (me == 0)
                std::printf("  %12llu %5d %-10s %11.2f %11.2f %9.3f %7llu\n", static_cast<unsigned long long>(bytes),
                            root, coll.last_algorithm().c_str(), t, tm, static_cast<double>(bytes) / (t * 1e3),
                            static_cast<unsigned long long>(all));
        }
    }
    if (me == 0) std::printf("Result: %s\n", wrong_total == 0 ? "all broadcasts verified" : "VERIFICATION FAILED");
    return wrong_total == 0 ? 0 : 1;
}

}  // namespace

constexpr const char* k_usage =
    "usage: mpirun -np <ranks> coyote_mpi_broadcast [--max 16M] [--iters 10]\n"
    "  --max: largest message in bytes, 1 .. 1G, K/M/G suffixes; sizes 1, 16, 256, ... (x16), every rank as root\n"
    "  --iters: timed calls per size, >= 1\n";

int main(int argc, char** argv) { return run_example(argc, argv, "broadcast", k_usage, run); }
