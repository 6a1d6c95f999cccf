// Consumer of an installed coyote::mpi: MPI bootstrap, device selection, an allreduce over FPGA RDMA checked
// against the closed form, on every rank of an mpirun job.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include <coyote/mpi/mpi.hpp>

int main(int argc, char** argv) {
    try {
        coyote::mpi::Environment env(&argc, &argv);
        coyote::mpi::Communicator comm;
        const auto device = coyote::mpi::select_device(comm);
        coyote::mpi::Collectives coll(comm, device);
        constexpr std::size_t n = 4096;
        std::vector<int32_t> in(n), out(n, 0);
        for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<int32_t>(i) + comm.rank();
        coll.allreduce(in.data(), out.data(), n, coyote::mpi::Datatype::int32, coyote::mpi::Op::sum);
        const int p = comm.size();
        const int32_t rank_sum = p * (p - 1) / 2;
        for (std::size_t i = 0; i < n; ++i)
            if (out[i] != static_cast<int32_t>(i) * p + rank_sum) {
                std::fprintf(stderr, "FAIL: rank %d element %zu is %d\n", comm.rank(), i, out[i]);
                return 1;
            }
        std::printf("rank %d of %d: allreduce of %zu int32 verified on %s (%s)\n", comm.rank(), p, n,
                    device.backend.c_str(), coll.last_algorithm().c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL: %s\n", e.what());
        return 1;
    }
}
