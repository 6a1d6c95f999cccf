// coyote-mpi benchmarks: a watchdog that ends this rank when a rank on the same host dies, so that no rank waits
// in a collective for a dead one (under mpirun --enable-recovery the job would otherwise spin on).
#pragma once

namespace coyote::bench::detail {

/// Collective (MPI_COMM_WORLD, after MPI_Init): learns the pid and host of every rank and, when a rank on this
/// host runs, starts a thread that watches their pidfds. When one exits, this rank reports "rank r (pid p) is
/// lost", removes its /dev/shm segments and exits with code 3. Ranks on other hosts are not watched (their death
/// shows as an error of the data path, which the harness turns into an abort).
void start_peer_watch();

/// Stops watching (before ranks may exit normally: call before the final barrier).
void stop_peer_watch() noexcept;

}  // namespace coyote::bench::detail
