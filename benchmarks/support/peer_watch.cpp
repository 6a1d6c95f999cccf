// coyote-mpi benchmarks: the same-host peer watchdog (pidfds polled by one thread).
#include "support/peer_watch.hpp"

#include <mpi.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "detail/cleanup.hpp"

namespace coyote::bench::detail {

namespace {

struct Identity {
    std::array<char, 64> host{};
    int pid = 0;
};

struct Watched {
    int rank = 0;
    int pid = 0;
    int fd = -1;
};

std::vector<Watched> g_watched;
std::atomic<bool> g_stop{false};
std::thread g_thread;

void watch() {
    std::vector<pollfd> fds;
    for (const auto& w : g_watched) fds.push_back({w.fd, POLLIN, 0});
    while (!g_stop.load()) {
        if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
        if (g_stop.load()) return;
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents == 0) continue;
            int me = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &me); // a local query, safe from this thread
            std::fprintf(stderr,
                         "rank %d: rank %d (pid %d) is lost: ending this rank (exit 3) instead of waiting for it "
                         "in a collective\n",
                         me, g_watched[i].rank, g_watched[i].pid);
            std::fflush(stderr);
            (void)coyote::detail::unlink_registered(); // our /dev/shm segments; no destructor runs after _exit
            ::_exit(3);
        }
    }
}

}  // namespace

void start_peer_watch() {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) return;
    Identity mine;
    (void)::gethostname(mine.host.data(), mine.host.size() - 1);
    mine.pid = static_cast<int>(::getpid());
    std::vector<Identity> all(static_cast<size_t>(size));
    MPI_Allgather(&mine, sizeof(Identity), MPI_BYTE, all.data(), sizeof(Identity), MPI_BYTE, MPI_COMM_WORLD);
    for (int r = 0; r < size; ++r) {
        const Identity& id = all[static_cast<size_t>(r)];
        if (r == rank || std::strncmp(id.host.data(), mine.host.data(), mine.host.size()) != 0) continue;
        const int fd = static_cast<int>(::syscall(SYS_pidfd_open, id.pid, 0));
        if (fd >= 0) g_watched.push_back({r, id.pid, fd});
    }
    if (!g_watched.empty()) g_thread = std::thread(watch);
}

void stop_peer_watch() noexcept {
    g_stop.store(true);
    if (g_thread.joinable()) g_thread.join();
    for (auto& w : g_watched) ::close(w.fd);
    g_watched.clear();
}

}  // namespace coyote::bench::detail
