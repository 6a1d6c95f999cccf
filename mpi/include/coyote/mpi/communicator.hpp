// coyote-mpi: RAII MPI communicator with node-local information; MPI errors as coyote::Error.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <string_view>

#include <coyote/error.hpp>
#include <coyote/mpi/bootstrap_options.hpp>

namespace coyote::mpi {

namespace detail {
/// Throws the coyote::Error of check_mpi for a failed call.
[[noreturn]] void throw_mpi_error(int rc, const char* call, std::string_view context);
}  // namespace detail

/// Throws coyote::Error (Errc::mpi) naming `call`, `context` and MPI_Error_string(rc) unless rc == MPI_SUCCESS.
/// Costs one comparison when the call succeeded (polling loops check every MPI_Test).
inline void check_mpi(int rc, const char* call, std::string_view context = {}) {
    if (rc != MPI_SUCCESS) [[unlikely]]
        detail::throw_mpi_error(rc, call, context);
}

namespace detail {
/// Owner of a duplicated MPI_Comm; frees it unless MPI is already finalised.
class CommHandle {
public:
    explicit CommHandle(MPI_Comm comm) noexcept : comm_(comm) {}
    CommHandle(const CommHandle&) = delete;
    CommHandle& operator=(const CommHandle&) = delete;
    ~CommHandle();
    MPI_Comm get() const noexcept { return comm_; }
    /// Leaves the communicator to MPI instead of freeing it: a collective request that may still use it is
    /// pending (Open MPI's non-blocking collectives keep no reference to their communicator).
    void abandon() noexcept { comm_ = MPI_COMM_NULL; }

private:
    MPI_Comm comm_;
};
}  // namespace detail

/// A move-only handle to a private duplicate of a user communicator (the user's is never freed), with
/// MPI_ERRORS_RETURN installed, plus the node-local view (MPI_COMM_TYPE_SHARED).
class Communicator {
public:
    /// Duplicates `comm` (collective over `comm`) and computes the node-local ranks and the node count.
    /// Bounded by the bootstrap deadline (`options`; the first constructor reads COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS):
    /// a rank of `comm` that does not construct its Communicator in time fails the others (MPI_Abort, or
    /// Errc::timeout with OnTimeout::throw_error) instead of leaving them in MPI_Comm_dup for good.
    explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD);
    Communicator(MPI_Comm comm, const BootstrapOptions& options);
    /// A moved-from Communicator has size 0 and refuses use: get() and node_comm() throw invalid_argument.
    Communicator(Communicator&& other) noexcept;
    Communicator& operator=(Communicator&& other) noexcept;
    Communicator(const Communicator&) = delete;
    Communicator& operator=(const Communicator&) = delete;
    ~Communicator() = default;

    /// The duplicated communicator (owned by this object).
    MPI_Comm get() const { return handle().get(); }
    /// The node-local communicator (ranks sharing memory with this one).
    MPI_Comm node_comm() const;
    /// False once moved from.
    bool valid() const noexcept { return comm_ != nullptr; }
    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }
    /// Rank among the ranks on this node, and their number.
    int local_rank() const noexcept { return local_rank_; }
    int local_size() const noexcept { return local_size_; }
    /// Number of nodes and this node's index in [0, node_count).
    int node_count() const noexcept { return node_count_; }
    int node_index() const noexcept { return node_index_; }
    /// CPUs the ranks of this node may run on: the union of their affinity masks when the Communicator was made
    /// (a launcher's binding, taskset, a Slurm step's cpuset), not the machine's core count. local_size() above
    /// it means the node is oversubscribed.
    int local_cores() const noexcept { return local_cores_; }
    /// This process's host name (MPI_Get_processor_name).
    const std::string& host() const noexcept { return host_; }

    /// Shared ownership of the duplicated communicator, for objects that must outlive this handle.
    std::shared_ptr<detail::CommHandle> share() const noexcept { return comm_; }

private:
    /// The duplicated communicator's handle; throws invalid_argument when moved from.
    const detail::CommHandle& handle() const;

    std::shared_ptr<detail::CommHandle> comm_;
    std::shared_ptr<detail::CommHandle> node_;
    int rank_ = 0;
    int size_ = 0;
    int local_rank_ = 0;
    int local_size_ = 0;
    int node_count_ = 0;
    int node_index_ = 0;
    int local_cores_ = 0;
    std::string host_;
};

/// A barrier over `comm` bounded by the bootstrap deadline (an arrival step, see arrive()): on expiry the ranks
/// that did not arrive are named. The first overload reads COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS.
void barrier(const Communicator& comm);
void barrier(const Communicator& comm, const BootstrapOptions& options);

/// Coyote's connSync for two-rank programs: a pairwise barrier with `peer` (the lower rank plays the client:
/// sends an ack then reads one; the higher rank reads then sends). Bounded by the bootstrap deadline.
void conn_sync(const Communicator& comm, int peer);

}  // namespace coyote::mpi
