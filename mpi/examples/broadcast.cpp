// coyote-mpi example: broadcast over FPGA RDMA from every root, verified on every rank, timed next to MPI_Bcast.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_broadcast [--max 16M] [--iters 10]
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

int main(int argc, char** argv) {
    Environment env(&argc, &argv);
    try {
        uint64_t max_bytes = 16u << 20;
        int iters = 10;
        for (int i = 1; i + 1 < argc; i += 2) {
            if (std::string(argv[i]) == "--max") max_bytes = std::strtoull(argv[i + 1], nullptr, 10);
            if (std::string(argv[i]) == "--iters") iters = std::max(1, std::atoi(argv[i + 1]));
        }
        Communicator comm;
        Collectives coll(comm, select_device(comm));
        const int n = comm.size();
        const int me = comm.rank();
        std::vector<uint8_t> buf(max_bytes), ref(max_bytes);
        uint64_t wrong_total = 0;
        if (me == 0)
            std::printf("# coyote-mpi broadcast: %d ranks\n# %12s %5s %-10s %11s %11s %9s %7s\n", n, "size(B)", "root",
                        "algorithm", "time(us)", "MPI(us)", "busbw", "#wrong");
        for (uint64_t bytes = 1; bytes <= max_bytes; bytes *= 16) {
            for (int root = 0; root < n; ++root) {
                auto fill = [&](std::vector<uint8_t>& v, int r) {
                    for (uint64_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(i * 31 + static_cast<uint64_t>(r) * 7);
                };
                auto time_it = [&](auto&& fn) {
                    fn(); // untimed warm-up: first touch of buffers and mappings
                    check_mpi(MPI_Barrier(comm.get()), "MPI_Barrier");
                    const auto t0 = std::chrono::steady_clock::now();
                    for (int i = 0; i < iters; ++i) fn();
                    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
                    double mx = 0;
                    check_mpi(MPI_Allreduce(&us, &mx, 1, MPI_DOUBLE, MPI_MAX, comm.get()), "MPI_Allreduce");
                    return mx;
                };
                fill(buf, me == root ? root : -1);
                const double t = time_it([&] { coll.broadcast(buf.data(), bytes, Datatype::uint8, root); });
                fill(ref, root);
                uint64_t wrong = 0;
                for (uint64_t i = 0; i < bytes; ++i) wrong += buf[i] != ref[i];
                uint64_t all = 0;
                check_mpi(MPI_Allreduce(&wrong, &all, 1, MPI_UINT64_T, MPI_SUM, comm.get()), "MPI_Allreduce");
                wrong_total += all;
                const double tm = time_it([&] { check_mpi(MPI_Bcast(ref.data(), static_cast<int>(bytes), MPI_BYTE, root, comm.get()), "MPI_Bcast"); });
                if (me == 0)
                    std::printf("  %12llu %5d %-10s %11.2f %11.2f %9.3f %7llu\n", static_cast<unsigned long long>(bytes), root,
                                coll.last_algorithm().c_str(), t, tm, static_cast<double>(bytes) / (t * 1e3),
                                static_cast<unsigned long long>(all));
            }
        }
        if (me == 0) std::printf("Result: %s\n", wrong_total == 0 ? "all broadcasts verified" : "VERIFICATION FAILED");
        return wrong_total == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote-mpi broadcast: %s\n", e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return 2;
}
