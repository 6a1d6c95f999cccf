// Time to wire every pair of ranks with queue pairs: coyote::mpi::QpSet (one MPI_Ialltoall of fixed-size
// slots) against the stock TCP out-of-band exchange done pair by pair the way stock applications do it
// (for each pair a server thread.initRDMA(size, port) and a client thread.initRDMA(size, port, ip), one port
// per pair, pairs processed in one global order so that nobody deadlocks). Both in the same run; only rank 0
// reports. Run with: mpirun -np N --oversubscribe ./bootstrap_bench [repetitions]
#include <coyote/mpi/mpi.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t k_buffer = 4096;

/// Slowest rank's time of `fn`, started together after a barrier.
template <typename Fn>
double timed_ms(const Communicator& comm, Fn&& fn) {
    barrier(comm);
    const auto t0 = Clock::now();
    fn();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    double worst = 0;
    check_mpi(MPI_Allreduce(&ms, &worst, 1, MPI_DOUBLE, MPI_MAX, comm.get()), "MPI_Allreduce", "timing");
    return worst;
}

double mpi_wiring_ms(const Communicator& comm, const DeviceAssignment& dev) {
    std::unique_ptr<QpSet> qps;
    WiringOptions o;
    o.buffer_size = k_buffer;
    o.pattern = PeerPattern::all;
    const double ms = timed_ms(comm, [&] { qps = std::make_unique<QpSet>(comm, dev, o); });
    barrier(comm);
    return ms;
}

double tcp_wiring_ms(const Communicator& comm, const DeviceAssignment& dev, uint16_t base_port) {
    const int n = comm.size();
    const int me = comm.rank();
    std::vector<std::unique_ptr<cThread>> threads;
    const double ms = timed_ms(comm, [&] {
        int pair = 0;
        for (int i = 0; i < n; ++i)
            for (int j = i + 1; j < n; ++j, ++pair) {
                if (me != i && me != j) continue;
                const auto port = static_cast<uint16_t>(base_port + pair);
                auto t = std::make_unique<cThread>(dev.vfid, ::getpid(), dev.device);
                if (me == i)
                    (void)t->initRDMA(k_buffer, port);               // server
                else
                    (void)t->initRDMA(k_buffer, port, "127.0.0.1");  // client
                threads.push_back(std::move(t));
            }
    });
    barrier(comm);
    return ms;
}

int run(int reps) {
    Communicator comm;
    const auto dev = select_device(comm);
    const int n = comm.size();
    const int pairs = n * (n - 1) / 2;
    // One port range per repetition, chosen on rank 0 below the usual ephemeral range (32768+) so that no
    // client's source port takes a listening port of a later pair.
    if (reps * pairs > 4000)
        throw_error(Errc::invalid_argument, "bootstrap_bench", "too many repetitions x pairs for the port range");
    int base = 0;
    if (comm.rank() == 0) base = 10000 + static_cast<int>(std::random_device{}() % 18000u);
    check_mpi(MPI_Bcast(&base, 1, MPI_INT, 0, comm.get()), "MPI_Bcast", "port base");

    std::vector<double> mpi_ms, tcp_ms;
    for (int r = 0; r < reps; ++r) {
        mpi_ms.push_back(mpi_wiring_ms(comm, dev));
        tcp_ms.push_back(tcp_wiring_ms(comm, dev, static_cast<uint16_t>(base + r * pairs)));
    }
    std::sort(mpi_ms.begin(), mpi_ms.end());
    std::sort(tcp_ms.begin(), tcp_ms.end());
    const double m = mpi_ms[mpi_ms.size() / 2];
    const double t = tcp_ms[tcp_ms.size() / 2];
    if (comm.rank() == 0) {
        std::printf("bootstrap_bench: %2d ranks, %3d pairs (%d queue pairs), backend %s, median of %d\n", n, pairs,
                    2 * pairs, dev.backend.c_str(), reps);
        std::printf("  MPI QpSet (1 Ialltoall)   : %10.2f ms\n", m);
        std::printf("  stock TCP pairwise initRDMA: %10.2f ms\n", t);
        std::printf("  ratio TCP / MPI           : %10.2fx\n", m > 0 ? t / m : 0.0);
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Environment env(&argc, &argv);
        int reps = 3;
        if (argc > 1) reps = std::max(1, std::atoi(argv[1]));
        try {
            return run(reps);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bootstrap_bench: %s\n", e.what());
            std::fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bootstrap_bench: %s\n", e.what());
    }
    return 2;
}
