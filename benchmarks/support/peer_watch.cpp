// coyote-mpi benchmarks: the peer watchdog (coyote::mpi::PeerLiveness polled by one thread).
#include "support/peer_watch.hpp"

#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include <coyote/mpi/liveness.hpp>

#include "detail/cleanup.hpp"

namespace coyote::bench::detail {

namespace {

std::optional<coyote::mpi::PeerLiveness> g_live;
std::atomic<bool> g_stop{false};
std::thread g_thread;

void watch(int me) {
    while (!g_stop.load()) {
        const int lost = g_live->poll(std::chrono::milliseconds(100));
        if (lost < 0 || g_stop.load()) continue;
        std::fprintf(stderr,
                     "rank %d: rank %d is lost: ending this rank (exit 3) instead of waiting for it in a "
                     "collective (%s)\n",
                     me, lost, g_live->reason(lost).c_str());
        std::fflush(stderr);
        (void)coyote::detail::unlink_registered(); // our /dev/shm segments; no destructor runs after _exit
        ::_exit(3);
    }
}

}  // namespace

void start_peer_watch() {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) return;
    g_live.emplace(MPI_COMM_WORLD);
    g_thread = std::thread(watch, rank);
}

void stop_peer_watch() noexcept {
    g_stop.store(true);
    if (g_thread.joinable()) g_thread.join();
    g_live.reset();
}

}  // namespace coyote::bench::detail
