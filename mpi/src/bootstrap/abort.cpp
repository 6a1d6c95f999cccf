// MPI_Abort through the MPI profiling interface: this rank's /dev/shm files go before the job is torn down.
#include <mpi.h>

#include "detail/cleanup.hpp"

/// Open MPI's MPI_Abort ends the calling process with _exit(), so neither atexit handlers nor the SIGTERM
/// handler that mpirun's teardown would trigger run in it: remove this process's registered shared-memory files
/// first (async-signal-safe, nothing allocated), then abort as the MPI library does. Programs that link
/// coyote::mpi reach this definition before the MPI library's.
extern "C" int MPI_Abort(MPI_Comm comm, int errorcode) {
    (void)coyote::detail::unlink_registered();
    return PMPI_Abort(comm, errorcode);
}
