// Deadline probe: the last rank never joins the bootstrap; the others must abort within the deadline,
// naming it. Driven by deadline_test.sh.
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main(int argc, char** argv) {
    coyote::mpi::Environment env(&argc, &argv);
    coyote::mpi::Communicator comm;
    if (comm.rank() == comm.size() - 1) {
        // Never arrives; bounded so that a broken deadline cannot hang the test forever.
        std::this_thread::sleep_for(std::chrono::seconds(60));
        std::printf("probe: the absent rank was not stopped by an abort\n");
        return 0;
    }
    coyote::mpi::arrive(comm, "probe arrival", coyote::mpi::BootstrapOptions::from_env());
    std::printf("probe: rank %d passed the arrival step although a rank is absent\n", comm.rank());
    return 0;
}
