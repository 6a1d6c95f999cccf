// Deadline probe: every rank selects its device, then the last rank never joins the queue-pair wiring; the
// others must abort within the deadline, naming it. Driven by deadline_test.sh.
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main(int argc, char** argv) {
    coyote::mpi::Environment env(&argc, &argv);
    coyote::mpi::Communicator comm;
    const auto dev = coyote::mpi::select_device(comm);
    if (comm.rank() == comm.size() - 1) {
        // Never arrives; bounded so that a broken deadline cannot hang the test forever.
        std::this_thread::sleep_for(std::chrono::seconds(60));
        std::printf("probe: the absent rank was not stopped by an abort\n");
        return 0;
    }
    coyote::mpi::WiringOptions o;
    o.buffer_size = 4096;
    coyote::mpi::QpSet qps(comm, dev, o);
    std::printf("probe: rank %d wired although a rank is absent\n", comm.rank());
    return 0;
}
