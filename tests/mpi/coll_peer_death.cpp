// A rank dies (_exit) in the middle of an allreduce over FPGA RDMA; every other rank must fail within the
// collectives deadline with an error naming the dead rank. Run by coll_peer_death.sh, which checks the output.
// With the argument `eager` the allreduce is small (one message per exchange, the eager path) and the rank dies
// before entering it. `eager-late` adds a rank that enters 0.3 s late, after the ranks that saw the death have
// reported it and left: it must still name the dead rank, not the reporters whose queue pairs are now gone.
// `eager-direct` (run with COYOTE_COLL_DIRECT_MIN=1) uses a 2 KiB-a-rank allgather instead, eager with its
// messages placed directly: the survivors wait for the dead rank's ready-to-receive or its data. `sigkill`: the
// dying rank kills itself with SIGKILL inside the allreduce (no exit path of ours runs at all).
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <csignal>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {
/// Prints `line` and, when COYOTE_PEER_DEATH_DIR is set, writes it to <dir>/rank<N>.txt as well: the launcher
/// may drop a survivor's last output while it tears the job down, a file it cannot lose.
void report(int rank, const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    const char* dir = std::getenv("COYOTE_PEER_DEATH_DIR");
    if (dir == nullptr || *dir == '\0') return;
    const std::string path = std::string(dir) + "/rank" + std::to_string(rank) + ".txt";
    if (std::FILE* f = std::fopen(path.c_str(), "a")) {
        std::fprintf(f, "%s\n", line.c_str());
        std::fclose(f);
    }
}
}  // namespace

int main(int argc, char** argv) {
    Environment env(&argc, &argv);
    const std::string mode = argc > 1 ? argv[1] : "";
    const bool eager = mode == "eager" || mode == "eager-late" || mode == "eager-direct";
    const bool gather = mode == "eager-direct";
    const bool sigkill = mode == "sigkill";
    Communicator comm;
    const int victim = 1;
    if (const char* dir = std::getenv("COYOTE_PEER_DEATH_DIR"); dir != nullptr && *dir != '\0') {
        // The launcher script checks that none of these processes runs on and that their files go.
        if (std::FILE* f = std::fopen((std::string(dir) + "/pid" + std::to_string(comm.rank()) + ".txt").c_str(), "w")) {
            std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
            std::fclose(f);
        }
    }
    const int late = mode == "eager-late" ? comm.size() - 2 : -1;
    // The launcher reacts to the dead rank by terminating the others: survivors keep running until they have
    // seen the error (ignored before any rank can die, so a slow survivor is not terminated first).
    if (comm.rank() != victim) std::signal(SIGTERM, SIG_IGN);
    std::vector<float> data(4u << 20, 1.0f); // 16 MiB: many chunks through a small registered buffer
    std::unique_ptr<Collectives> keep; // survivors keep their queue pairs until exit
    try {
        keep = std::make_unique<Collectives>(comm, select_device(comm));
        Collectives& coll = *keep;
        coll.allreduce(MPI_IN_PLACE, data.data(), 1024, Datatype::float32, Op::sum); // all ranks are up
        // 512 floats a rank: the ring allgather (above allgather_small), one direct message a step.
        std::vector<float> all(512 * static_cast<std::size_t>(comm.size()));
        if (gather) {
            const uint64_t e0 = coll.eager_calls(), d0 = coll.direct_bytes();
            coll.allgather(data.data(), all.data(), 512, Datatype::float32);
            if (coll.eager_calls() != e0 + 1 || coll.direct_bytes() == d0)
                report(comm.rank(), "rank " + std::to_string(comm.rank()) +
                                        ": FAIL: the allgather did not run eagerly with direct placement");
        }
        // The victim leaves only once every rank finished the calls above: a survivor still inside them may yet
        // owe it a credit (returned while it waits), and would rightly fail there, before the call under test.
        if (eager && MPI_Barrier(comm.get()) != MPI_SUCCESS)
            report(comm.rank(), "rank " + std::to_string(comm.rank()) + ": FAIL: MPI_Barrier");
        if (comm.rank() == victim && eager) {
            std::printf("rank %d: exiting before the small allreduce\n", comm.rank());
            std::fflush(stdout);
            ::_exit(3);
        }
        if (comm.rank() == victim) {
            Request r = coll.iallreduce(MPI_IN_PLACE, data.data(), data.size(), Datatype::float32, Op::sum);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            std::printf("rank %d: %s inside the allreduce\n", comm.rank(), sigkill ? "SIGKILLed" : "exiting");
            std::fflush(stdout);
            if (sigkill) ::raise(SIGKILL);
            ::_exit(3);
        }
        if (comm.rank() == late) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        const auto t0 = std::chrono::steady_clock::now();
        const uint64_t before = coll.eager_calls();
        try {
            if (gather) {
                coll.allgather(data.data(), all.data(), 512, Datatype::float32);
            } else {
                coll.allreduce(MPI_IN_PLACE, data.data(), eager ? 4 : data.size(), Datatype::float32, Op::sum);
            }
            report(comm.rank(), "rank " + std::to_string(comm.rank()) + ": FAIL: the allreduce completed without rank " +
                                    std::to_string(victim));
        } catch (const Error& e) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const std::string msg = e.what();
            const bool names = msg.find("rank " + std::to_string(victim)) != std::string::npos;
            if (eager && coll.eager_calls() != before)
                report(comm.rank(), "rank " + std::to_string(comm.rank()) + ": FAIL: a failed call counted as eager");
            char head[160];
            std::snprintf(head, sizeof(head), "rank %d: %s after %.2f s: ", comm.rank(),
                          names ? "DETECTED the death of rank 1" : "FAIL: error does not name rank 1", s);
            report(comm.rank(), head + msg);
        }
    } catch (const std::exception& e) {
        report(comm.rank(), "rank " + std::to_string(comm.rank()) + ": FAIL: " + e.what());
    }
    ::_exit(sigkill ? 4 : 0); // MPI cannot finalise with a dead rank; with a SIGKILLed peer the job failed
}
