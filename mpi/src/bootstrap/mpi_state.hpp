// coyote-mpi MPI layer: whether MPI may still be called (internal).
#pragma once

#include <mpi.h>

namespace coyote::mpi::detail {

/// True once MPI_Finalize has run: most MPI calls would then abort the whole job.
inline bool mpi_finalized() noexcept {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized != 0;
}

}  // namespace coyote::mpi::detail
