// coyote-mpi sim backend: how many cores this process can count on: the launcher's count of ranks on the node and
// the CPUs of the process's affinity mask. The sim's automatic settings (poll spinning, model threads) derive from it.
#pragma once

#include <cstdint>

namespace coyote::detail::sim {

/// Ranks on this node as the launcher tells it (Open MPI, MPICH / Hydra, Slurm), 0 when unknown.
int64_t local_ranks();

/// CPUs this process may run on (its affinity mask; the online CPUs when the mask cannot be read), at least 1.
int64_t usable_cpus();

}  // namespace coyote::detail::sim
