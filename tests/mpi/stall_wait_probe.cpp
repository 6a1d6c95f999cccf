// Stall-doctor probe for the MPI layer's waits: rank 1 reaches the out-of-band exchange late, so rank 0 waits in
// it past COYOTE_STALL_WARN_MS and its doctor must report that wait (the test's regular expression checks the report).
#include <coyote/mpi/mpi.hpp>
#include <coyote/mpi/oob.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    coyote::mpi::Environment env(&argc, &argv);
    coyote::mpi::Communicator comm;
    if (comm.size() != 2) {
        std::fprintf(stderr, "stall_wait_probe needs 2 ranks\n");
        return 2;
    }
    if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto oob = coyote::mpi::make_mpi_oob(comm, 1 - comm.rank());
    const std::vector<std::byte> mine(16, std::byte{static_cast<unsigned char>(comm.rank())});
    const auto theirs = oob->exchange(mine);
    if (theirs.size() != mine.size() || theirs[0] != std::byte{static_cast<unsigned char>(1 - comm.rank())}) {
        std::fprintf(stderr, "rank %d: wrong exchange payload\n", comm.rank());
        return 1;
    }
    std::printf("stall wait probe rank %d done\n", comm.rank());
    return 0;
}
