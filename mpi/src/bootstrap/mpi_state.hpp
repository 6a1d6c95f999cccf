// coyote-mpi MPI layer: whether MPI, and a Communicator, may still be used (internal).
#pragma once

#include <mpi.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <coyote/mpi/bootstrap_options.hpp>

#include "diag/wait.hpp"

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

/// Polls point-to-point requests (MPI_Testsome, sched_yield between polls so that oversubscribed ranks progress)
/// and hands out the index of each one as it completes, until none is left or the deadline passes. Completed
/// requests become MPI_REQUEST_NULL, so after a deadline the pending ones say who is missing. The stall doctor
/// reports a long wait as the bootstrap's (a wait is registered with it once it has lasted a millisecond).
class PollUntil {
public:
    static constexpr int all_done = -1;
    static constexpr int expired = -2;

    PollUntil(std::vector<MPI_Request>& reqs, std::chrono::steady_clock::time_point deadline, const char* what);
    /// The index of a request that completed since the last call, all_done, or expired.
    int next();
    /// Moves the deadline (later or earlier).
    void extend(std::chrono::steady_clock::time_point deadline) noexcept { deadline_ = deadline; }

private:
    std::vector<MPI_Request>& reqs_;
    std::vector<int> indices_;
    int count_ = 0, ready_ = 0;
    unsigned polls_ = 0;
    std::chrono::steady_clock::time_point start_, deadline_;
    const char* what_;
    std::optional<::coyote::detail::diag::WaitWatch> watch_;  // from the first millisecond on (barriers are short)
};

/// Polls `reqs` until all complete (true) or the deadline passes (false).
bool test_until(std::vector<MPI_Request>& reqs, std::chrono::steady_clock::time_point deadline, const char* what);

/// Cancels and frees an incomplete point-to-point request (after a timeout); a null request is left alone.
void cancel_incomplete(MPI_Request& req) noexcept;
void cancel_incomplete(std::vector<MPI_Request>& reqs) noexcept;

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
