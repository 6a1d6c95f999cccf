// A rank dies (_exit) in the middle of an allreduce over FPGA RDMA; every other rank must fail within the
// collectives deadline with an error naming the dead rank. Run by coll_peer_death.sh, which checks the output.
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <csignal>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

int main(int argc, char** argv) {
    Environment env(&argc, &argv);
    Communicator comm;
    const int victim = 1;
    // The launcher reacts to the dead rank by terminating the others: survivors keep running until they have
    // seen the error (ignored before any rank can die, so a slow survivor is not terminated first).
    if (comm.rank() != victim) std::signal(SIGTERM, SIG_IGN);
    std::vector<float> data(4u << 20, 1.0f); // 16 MiB: many chunks through a small registered buffer
    std::unique_ptr<Collectives> keep; // survivors keep their queue pairs until exit
    try {
        keep = std::make_unique<Collectives>(comm, select_device(comm));
        Collectives& coll = *keep;
        coll.allreduce(MPI_IN_PLACE, data.data(), 1024, Datatype::float32, Op::sum); // all ranks are up
        if (comm.rank() == victim) {
            Request r = coll.iallreduce(MPI_IN_PLACE, data.data(), data.size(), Datatype::float32, Op::sum);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            std::printf("rank %d: exiting inside the allreduce\n", comm.rank());
            std::fflush(stdout);
            ::_exit(3);
        }
        const auto t0 = std::chrono::steady_clock::now();
        try {
            coll.allreduce(MPI_IN_PLACE, data.data(), data.size(), Datatype::float32, Op::sum);
            std::printf("rank %d: FAIL: the allreduce completed without rank %d\n", comm.rank(), victim);
        } catch (const Error& e) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const std::string msg = e.what();
            const bool names = msg.find("rank " + std::to_string(victim)) != std::string::npos;
            std::printf("rank %d: %s after %.2f s: %s\n", comm.rank(),
                        names ? "DETECTED the death of rank 1" : "FAIL: error does not name rank 1", s, msg.c_str());
        }
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::printf("rank %d: FAIL: %s\n", comm.rank(), e.what());
        std::fflush(stdout);
    }
    ::_exit(0); // MPI cannot finalise with a dead rank
}
