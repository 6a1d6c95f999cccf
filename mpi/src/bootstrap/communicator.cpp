#include <coyote/mpi/communicator.hpp>

#include <coyote/mpi/bootstrap.hpp>

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

void detail::throw_mpi_error(int rc, const char* call, std::string_view context) {
    char text[MPI_MAX_ERROR_STRING] = {0};
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    std::string msg(context);
    if (!msg.empty()) msg += ": ";
    msg += "MPI error " + std::to_string(rc) + " (" + std::string(text, static_cast<std::size_t>(len)) + ")";
    throw_error(Errc::mpi, call, msg);
}

namespace detail {
CommHandle::~CommHandle() {
    if (comm_ == MPI_COMM_NULL) return;
    if (!mpi_finalized()) MPI_Comm_free(&comm_);
}
}  // namespace detail

MPI_Comm detail::duplicate_bounded(MPI_Comm comm, const std::string& step, const std::string& who,
                                   const BootstrapOptions& options) {
    int size = 0;
    check_mpi(MPI_Comm_size(comm, &size), "MPI_Comm_size", step);
    // On expiry the pending duplication keeps writing into its handle: the handle is then left to it.
    auto* dup = new MPI_Comm(MPI_COMM_NULL);
    MPI_Request req = MPI_REQUEST_NULL;
    try {
        check_mpi(MPI_Comm_idup(comm, dup, &req), "MPI_Comm_idup", step);
    } catch (...) {
        delete dup;
        throw;
    }
    detail::wait_uncancellable(req, comm, step,
                               "not every rank of the communicator (" + std::to_string(size) +
                                   " ranks) reached bootstrap step '" + step + "' (a rank did not " + who +
                                   ", or is stuck or gone)",
                               std::chrono::steady_clock::now() + options.timeout, options);
    const MPI_Comm out = *dup;
    delete dup;
    return out;
}

namespace {

/// The CPUs the ranks of `node` may run on: the union of their affinity masks (the machine's count where a mask
/// cannot be read).
int node_cores(MPI_Comm node) {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (::sched_getaffinity(0, sizeof(mine), &mine) != 0) {
        const unsigned all = std::thread::hardware_concurrency();
        for (unsigned c = 0; c < all && c < CPU_SETSIZE; ++c) CPU_SET(c, &mine);
    }
    cpu_set_t any;
    CPU_ZERO(&any);
    check_mpi(MPI_Allreduce(&mine, &any, static_cast<int>(sizeof(cpu_set_t)), MPI_BYTE, MPI_BOR, node),
              "MPI_Allreduce", "CPUs of the node's ranks");
    return std::max(1, CPU_COUNT(&any));
}

}  // namespace

Communicator::Communicator(MPI_Comm comm) : Communicator(comm, BootstrapOptions::from_env()) {}

Communicator::Communicator(MPI_Comm comm, const BootstrapOptions& options) {
    detail::require_mpi("Communicator");
    if (comm == MPI_COMM_NULL) throw_error(Errc::invalid_argument, "Communicator", "MPI_COMM_NULL given");
    const MPI_Comm dup = detail::duplicate_bounded(comm, "communicator duplication",
                                                   "construct its coyote::mpi::Communicator", options);
    comm_ = std::make_shared<detail::CommHandle>(dup);
    check_mpi(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", "MPI_ERRORS_RETURN");
    check_mpi(MPI_Comm_rank(dup, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(dup, &size_), "MPI_Comm_size");
    // Every rank is here before the blocking calls below (MPI_Comm_split_type has no non-blocking form).
    detail::arrive_on(dup, rank_, size_, "communicator set-up", options);

    MPI_Comm node = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split_type(dup, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type",
              "MPI_COMM_TYPE_SHARED");
    node_ = std::make_shared<detail::CommHandle>(node);
    check_mpi(MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", "node communicator");
    check_mpi(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank", "node communicator");
    check_mpi(MPI_Comm_size(node, &local_size_), "MPI_Comm_size", "node communicator");

    // Node index: exclusive prefix count of node leaders (ranks with local rank 0), taken at each leader and
    // broadcast on the node.
    int leader = local_rank_ == 0 ? 1 : 0;
    int before = 0;
    check_mpi(MPI_Exscan(&leader, &before, 1, MPI_INT, MPI_SUM, dup), "MPI_Exscan", "counting node leaders");
    if (rank_ == 0) before = 0;  // MPI_Exscan leaves rank 0's result undefined
    int index = before;
    check_mpi(MPI_Bcast(&index, 1, MPI_INT, 0, node), "MPI_Bcast", "node index");
    node_index_ = index;
    check_mpi(MPI_Allreduce(&leader, &node_count_, 1, MPI_INT, MPI_SUM, dup), "MPI_Allreduce", "counting nodes");
    local_cores_ = node_cores(node);

    char name[MPI_MAX_PROCESSOR_NAME] = {0};
    int name_len = 0;
    check_mpi(MPI_Get_processor_name(name, &name_len), "MPI_Get_processor_name");
    host_.assign(name, static_cast<std::size_t>(name_len));
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::move(other.comm_)), node_(std::move(other.node_)), rank_(other.rank_), size_(other.size_),
      local_rank_(other.local_rank_), local_size_(other.local_size_), node_count_(other.node_count_),
      node_index_(other.node_index_), local_cores_(other.local_cores_), host_(std::move(other.host_)) {
    other.rank_ = other.size_ = other.local_rank_ = other.local_size_ = other.node_count_ = other.node_index_ = 0;
    other.local_cores_ = 0;
}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
    if (this != &other) {
        Communicator moved(std::move(other));
        std::swap(comm_, moved.comm_);
        std::swap(node_, moved.node_);
        std::swap(host_, moved.host_);
        rank_ = moved.rank_, size_ = moved.size_, local_rank_ = moved.local_rank_;
        local_size_ = moved.local_size_, node_count_ = moved.node_count_, node_index_ = moved.node_index_;
        local_cores_ = moved.local_cores_;
    }
    return *this;
}

const detail::CommHandle& Communicator::handle() const {
    if (!comm_) throw_error(Errc::invalid_argument, "Communicator", "used after it was moved from");
    return *comm_;
}

MPI_Comm Communicator::node_comm() const {
    (void)handle();
    return node_->get();
}

void detail::require_mpi(const char* call) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized)
        throw_error(Errc::mpi, call, "MPI is not initialised (create a coyote::mpi::Environment first)");
    if (mpi_finalized())
        throw_error(Errc::mpi, call, "MPI was finalized (MPI_Finalize ran): no MPI call may follow");
}

void detail::require_valid(const Communicator& comm, const char* call) {
    if (!comm.valid()) throw_error(Errc::invalid_argument, call, "the Communicator was moved from");
    require_mpi(call);
}

void barrier(const Communicator& comm) { barrier(comm, BootstrapOptions::from_env()); }

void barrier(const Communicator& comm, const BootstrapOptions& options) {
    detail::require_valid(comm, "barrier");
    arrive(comm, "barrier", options);
}

void conn_sync(const Communicator& comm, int peer) {
    detail::require_valid(comm, "conn_sync");
    if (peer < 0 || peer >= comm.size() || peer == comm.rank())
        throw_error(Errc::invalid_argument, "conn_sync",
                    "peer rank " + std::to_string(peer) + " is not another rank of a communicator of size " +
                        std::to_string(comm.size()) + " (this rank is " + std::to_string(comm.rank()) + ")");
    const auto options = BootstrapOptions::from_env();
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    uint32_t out = 1;
    uint32_t in = 0;
    std::vector<MPI_Request> reqs(2, MPI_REQUEST_NULL);
    const std::string what = "conn_sync with rank " + std::to_string(peer);
    // Both directions at once: equivalent to the client-sends-first ordering, without a round trip more.
    check_mpi(MPI_Irecv(&in, 1, MPI_UINT32_T, peer, k_tag_oob_ack, comm.get(), &reqs[0]), "MPI_Irecv", what);
    check_mpi(MPI_Isend(&out, 1, MPI_UINT32_T, peer, k_tag_oob_ack, comm.get(), &reqs[1]), "MPI_Isend", what);
    wait_all(reqs, comm.get(), what + ": rank " + std::to_string(peer) + " did not arrive", deadline, options);
}

}  // namespace coyote::mpi
