// coyote-mpi MPI layer: whether MPI, and a Communicator, may still be used (internal).
#pragma once

#include <mpi.h>

namespace coyote::mpi {
class Communicator;
}

namespace coyote::mpi::detail {

/// Throws invalid_argument naming `call` when `comm` was moved from (its size reads 0; its handle is gone).
void require_valid(const Communicator& comm, const char* call);

/// True once MPI_Finalize has run: most MPI calls would then abort the whole job.
inline bool mpi_finalized() noexcept {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized != 0;
}

}  // namespace coyote::mpi::detail
