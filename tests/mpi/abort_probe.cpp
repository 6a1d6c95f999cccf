// Abort probe: every rank opens its vFPGA and wires queue pairs (shared-memory segments of its pid), prints its
// pid, and the last rank calls MPI_Abort itself while the others wait in a barrier. Driven by abort_test.sh.
#include <coyote/mpi/mpi.hpp>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    coyote::mpi::Environment env(&argc, &argv);
    coyote::mpi::Communicator comm;
    const auto dev = coyote::mpi::select_device(comm);
    coyote::mpi::WiringOptions o;
    o.buffer_size = 1 << 20;
    coyote::mpi::QpSet qps(comm, dev, o);
    std::printf("abort probe rank %d pid %d\n", comm.rank(), static_cast<int>(::getpid()));
    std::fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    if (comm.rank() == comm.size() - 1) MPI_Abort(MPI_COMM_WORLD, 5);
    MPI_Barrier(MPI_COMM_WORLD); // never completes: the abort ends the job
    return 0;
}
