// coyote-mpi benchmarks: a watchdog that ends this rank when another rank dies, so that no rank waits
// in a collective for a dead one (under mpirun --enable-recovery the job would otherwise spin on).
#pragma once

namespace coyote::bench::detail {

/// Collective (MPI_COMM_WORLD, after MPI_Init): sets up a coyote::mpi::PeerLiveness (pidfds for ranks on this
/// host, a connection to each rank on another host) and starts a thread that polls it. When a rank is gone, this
/// rank reports "rank r is lost: ending this rank ... (reason)", removes its /dev/shm segments and exits with
/// code 3. Ranks on other hosts are watched when the liveness listener has a reachable address
/// (COYOTE_MPI_LIVENESS_ADDR or COYOTE_SIM_WIRE_ADDR).
void start_peer_watch();

/// Stops watching (before ranks may exit normally: call before the final barrier).
void stop_peer_watch() noexcept;

}  // namespace coyote::bench::detail
