// coyote-mpi example: alltoall over FPGA RDMA (each rank sends block j to rank j), verified, timed next to
// MPI_Alltoall.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_alltoall [--max 4M] [--iters 10]
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

int main(int argc, char** argv) {
    Environment env(&argc, &argv);
    try {
        uint64_t max_block = 4u << 20;
        int iters = 10;
        for (int i = 1; i + 1 < argc; i += 2) {
            if (std::string(argv[i]) == "--max") max_block = std::strtoull(argv[i + 1], nullptr, 10);
            if (std::string(argv[i]) == "--iters") iters = std::max(1, std::atoi(argv[i + 1]));
        }
        Communicator comm;
        Collectives coll(comm, select_device(comm));
        const int n = comm.size();
        const int me = comm.rank();
        const auto un = static_cast<uint64_t>(n);
        // Element (block j, index i) sent by rank r: a value naming all three.
        auto value = [](int r, int j, uint64_t i) { return static_cast<uint32_t>(r) << 24 ^ static_cast<uint32_t>(j) << 16 ^ static_cast<uint32_t>(i); };
        uint64_t wrong_total = 0;
        if (me == 0)
            std::printf("# coyote-mpi alltoall: %d ranks\n# %12s %-9s %11s %11s %9s %7s\n", n, "block(B)", "algorithm",
                        "time(us)", "MPI(us)", "busbw", "#wrong");
        for (uint64_t block = 4; block <= max_block; block *= 16) {
            const uint64_t cnt = block / 4;
            std::vector<uint32_t> send(cnt * un), recv(cnt * un, 0), ref(cnt * un);
            for (int j = 0; j < n; ++j)
                for (uint64_t i = 0; i < cnt; ++i) send[static_cast<uint64_t>(j) * cnt + i] = value(me, j, i);
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
            const double t = time_it([&] { coll.alltoall(send.data(), recv.data(), cnt, Datatype::uint32); });
            uint64_t wrong = 0;
            for (int r = 0; r < n; ++r)
                for (uint64_t i = 0; i < cnt; ++i) wrong += recv[static_cast<uint64_t>(r) * cnt + i] != value(r, me, i);
            uint64_t all = 0;
            check_mpi(MPI_Allreduce(&wrong, &all, 1, MPI_UINT64_T, MPI_SUM, comm.get()), "MPI_Allreduce");
            wrong_total += all;
            const double tm = time_it([&] {
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
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote-mpi alltoall: %s\n", e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return 2;
}
