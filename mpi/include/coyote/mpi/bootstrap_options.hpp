// coyote-mpi: the deadline of the bootstrap steps and what happens when it passes.
#pragma once

#include <chrono>

namespace coyote::mpi {

/// What a bootstrap step does when its deadline passes.
enum class OnTimeout {
    abort,      ///< print the message to stderr and MPI_Abort the job (default: nothing can continue anyway)
    throw_error ///< throw coyote::Error (Errc::timeout); outstanding receives are cancelled
};

/// Deadline of every bootstrap step (communicator set-up, arrival, status agreement, queue-pair exchange,
/// barriers, pairwise acks).
struct BootstrapOptions {
    std::chrono::milliseconds timeout{120000};
    OnTimeout on_timeout = OnTimeout::abort;
    /// Defaults, with the timeout read from COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS when set (positive integer).
    static BootstrapOptions from_env();
};

}  // namespace coyote::mpi
