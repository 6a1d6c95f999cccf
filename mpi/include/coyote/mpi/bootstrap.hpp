// coyote-mpi: launch sanity and deadlines for the collective bootstrap steps.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <coyote/mpi/bootstrap_options.hpp>
#include <coyote/mpi/communicator.hpp>

namespace coyote::mpi {

/// Throws coyote::Error (Errc::invalid_argument) when MPI_COMM_WORLD has one rank but the launcher
/// environment (SLURM_NTASKS, OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE) says the job has more: the program
/// was started by a launcher whose MPI does not match the one it was built with (a silent singleton).
void check_launch();
/// Same check on an explicit environment (for tests): `world_size` and variable -> value.
void check_launch(int world_size, const std::map<std::string, std::string>& env);

/// An arrival barrier with a deadline: every rank sends a token naming `step` to rank 0, which answers every rank
/// with a verdict once all tokens came (3 (N - 1) small messages in all, O(1) per rank other than 0). When rank 0's
/// deadline passes, every rank present names the ranks whose token is missing ("ranks 2, 5 of 8 did not arrive at
/// bootstrap step '<step>'"); when rank 0 never comes, the others name it. A token of another step (the ranks
/// called the bootstrap functions in different orders) is an error (Errc::protocol) on every rank, naming that
/// rank and both steps. Collective over `comm`.
void arrive(const Communicator& comm, const std::string& step, const BootstrapOptions& options);

/// Waits for `requests` (MPI_Test loop with sched_yield) until the deadline; on expiry handles the timeout
/// as `options` says with `what` as the message. Returns when all completed.
/// `requests` must be point-to-point requests (incomplete ones are cancelled on expiry).
void wait_all(std::vector<MPI_Request>& requests, MPI_Comm comm, const std::string& what,
              std::chrono::steady_clock::time_point deadline, const BootstrapOptions& options);

/// Handles an expired deadline on `comm`: prints "<message>" and MPI_Aborts, or throws Errc::timeout.
[[noreturn]] void bootstrap_timeout(MPI_Comm comm, const std::string& message, const BootstrapOptions& options);

/// MPI_Iallgather of `bytes_per_rank` bytes per rank, preceded by arrive(); bounded by the deadline.
std::vector<std::byte> allgather_bytes(const Communicator& comm, const void* mine, std::size_t bytes_per_rank,
                                       const std::string& step, const BootstrapOptions& options);

/// MPI_Ialltoall of fixed-size slots (`send` holds size() slots of `slot_bytes`), preceded by arrive();
/// bounded by the deadline. Returns size() slots, slot i from rank i.
std::vector<std::byte> alltoall_bytes(const Communicator& comm, const std::vector<std::byte>& send,
                                      std::size_t slot_bytes, const std::string& step,
                                      const BootstrapOptions& options);

/// Reserved tags on the (private) duplicated communicator.
inline constexpr int k_tag_oob_exchange = 0x7c01;
inline constexpr int k_tag_oob_ack = 0x7c02;
inline constexpr int k_tag_arrival = 0x7c10;  // and the two tags after it (rank 0's presence and verdict)

}  // namespace coyote::mpi
