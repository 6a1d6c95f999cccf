#include <coyote/mpi/oob.hpp>

#include <coyote/mpi/porting.hpp>

#include <sched.h>

#include <climits>
#include <string>

#include "diag/wait.hpp"
#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

MpiOob::MpiOob(const Communicator& comm, int peer, BootstrapOptions options)
    : comm_(comm.share()), rank_(comm.rank()), peer_(peer), options_(options) {
    detail::require_valid(comm, "make_mpi_oob");
    if (peer < 0 || peer >= comm.size() || peer == comm.rank())
        throw_error(Errc::invalid_argument, "make_mpi_oob",
                    "peer rank " + std::to_string(peer) + " is not another rank of a communicator of size " +
                        std::to_string(comm.size()) + " (this rank is " + std::to_string(comm.rank()) + ")");
}

std::vector<std::byte> MpiOob::exchange(std::span<const std::byte> mine) {
    detail::require_mpi("MpiOob::exchange");
    const std::string what = "MpiOob exchange with rank " + std::to_string(peer_);
    if (mine.size() >= static_cast<std::size_t>(INT32_MAX))
        throw_error(Errc::invalid_argument, "MpiOob::exchange", what + ": message too large");
    // One byte more than expected so that a longer peer message is detected instead of truncated.
    std::vector<std::byte> theirs(mine.size() + 1);
    std::vector<MPI_Request> reqs(2, MPI_REQUEST_NULL);
    MPI_Status st{};
    const MPI_Comm c = comm_->get();
    check_mpi(MPI_Irecv(theirs.data(), static_cast<int>(theirs.size()), MPI_BYTE, peer_, k_tag_oob_exchange, c, &reqs[0]),
              "MPI_Irecv", what);
    check_mpi(MPI_Isend(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, peer_, k_tag_oob_exchange, c, &reqs[1]),
              "MPI_Isend", what);
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    const coyote::detail::diag::WaitWatch watch(
        "connSync/exchange (MPI out-of-band)", "rank " + std::to_string(peer_) + "'s half of the exchange",
        "rank " + std::to_string(peer_) + " has not called its side of the exchange (busy elsewhere, stuck or "
        "gone); it fails at the deadline (COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS)");
    // Poll the receive with its status (for the length check), then the send.
    for (unsigned polls = 0;; ++polls) {
        int done = 0;
        check_mpi(MPI_Test(&reqs[0], &done, &st), "MPI_Test", what);
        if (done) break;
        if ((polls & 0x3F) == 0 && std::chrono::steady_clock::now() >= deadline) {
            MPI_Cancel(&reqs[0]);
            MPI_Request_free(&reqs[0]);
            MPI_Request_free(&reqs[1]);  // `mine` belongs to the caller; the job is failing anyway
            bootstrap_timeout(c, what + ": rank " + std::to_string(peer_) + " did not answer", options_);
        }
        ::sched_yield();
    }
    std::vector<MPI_Request> send_only{reqs[1]};
    wait_all(send_only, c, what + ": send not delivered", deadline, options_);
    int count = 0;
    check_mpi(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count", what);
    if (count != static_cast<int>(mine.size()))
        throw_error(Errc::protocol, "MpiOob::exchange",
                    what + ": peer sent " + std::to_string(count) + " bytes, expected " + std::to_string(mine.size()) +
                        " (different backends on the two sides?)");
    theirs.resize(mine.size());
    return theirs;
}

void MpiOob::send_ack(uint32_t ack) {
    detail::require_mpi("MpiOob::send_ack");
    const std::string what = "MpiOob send_ack to rank " + std::to_string(peer_);
    std::vector<MPI_Request> reqs(1, MPI_REQUEST_NULL);
    check_mpi(MPI_Isend(&ack, 1, MPI_UINT32_T, peer_, k_tag_oob_ack, comm_->get(), &reqs[0]), "MPI_Isend", what);
    wait_all(reqs, comm_->get(), what + ": not delivered", std::chrono::steady_clock::now() + options_.timeout,
             options_);
}

uint32_t MpiOob::read_ack() {
    detail::require_mpi("MpiOob::read_ack");
    const std::string what = "MpiOob read_ack from rank " + std::to_string(peer_);
    uint32_t ack = 0;
    std::vector<MPI_Request> reqs(1, MPI_REQUEST_NULL);
    check_mpi(MPI_Irecv(&ack, 1, MPI_UINT32_T, peer_, k_tag_oob_ack, comm_->get(), &reqs[0]), "MPI_Irecv", what);
    wait_all(reqs, comm_->get(), what + ": rank " + std::to_string(peer_) + " sent no ack",
             std::chrono::steady_clock::now() + options_.timeout, options_);
    return ack;
}

std::unique_ptr<OobChannel> make_mpi_oob(const Communicator& comm, int peer, BootstrapOptions options) {
    return std::make_unique<MpiOob>(comm, peer, options);
}

void* initRDMA(cThread& thread, const Communicator& comm, int peer_rank, uint64_t buffer_size) {
    return thread.initRDMA(buffer_size, make_mpi_oob(comm, peer_rank));
}

}  // namespace coyote::mpi
