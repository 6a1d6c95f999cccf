// coyote-mpi MPI layer: whether MPI, and a Communicator, may still be used (internal).
#pragma once

#include <mpi.h>

#include <chrono>
#include <string>

#include <coyote/mpi/bootstrap_options.hpp>

namespace coyote::mpi {
class Communicator;
}

namespace coyote::mpi::detail {

/// Throws Errc::mpi naming `call` unless MPI is initialised and not yet finalised (an MPI call then would end the
/// process with MPI's own abort).
void require_mpi(const char* call);

/// Throws invalid_argument naming `call` when `comm` was moved from (its size reads 0; its handle is gone), and
/// Errc::mpi when MPI is not initialised or already finalised (require_mpi).
void require_valid(const Communicator& comm, const char* call);

/// arrive() on a raw communicator (`me` of `n` ranks), for steps that run before a Communicator exists.
void arrive_on(MPI_Comm comm, int me, int n, const std::string& step, const BootstrapOptions& options);

/// Waits for one request that cannot be cancelled (a non-blocking collective) of bootstrap step `step` until
/// `deadline`; on expiry handles the timeout on `comm` as `options` says, with `failure` as the message. The request
/// and its buffers then stay with MPI for good.
void wait_uncancellable(MPI_Request& req, MPI_Comm comm, const std::string& step, const std::string& failure,
                        std::chrono::steady_clock::time_point deadline, const BootstrapOptions& options);

/// MPI_Comm_idup of `comm` bounded by the deadline of `options`. On expiry the message names `step` and says that a
/// rank did not `who` (e.g. "construct its coyote::mpi::Communicator").
MPI_Comm duplicate_bounded(MPI_Comm comm, const std::string& step, const std::string& who,
                           const BootstrapOptions& options);

/// True once MPI_Finalize has run: most MPI calls would then abort the whole job.
inline bool mpi_finalized() noexcept {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized != 0;
}

}  // namespace coyote::mpi::detail
