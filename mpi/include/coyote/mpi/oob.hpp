// coyote-mpi: coyote::OobChannel over MPI point-to-point messages.
#pragma once

#include <memory>

#include <coyote/oob.hpp>
#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/communicator.hpp>

namespace coyote::mpi {

/// Out-of-band channel to one peer rank: exchange and acks are tagged messages on the communicator's private
/// duplicate (reserved tags), bounded by the bootstrap deadline; close() is a no-op. The lower rank is the
/// client. Keeps the duplicated communicator alive.
class MpiOob final : public OobChannel {
public:
    MpiOob(const Communicator& comm, int peer, BootstrapOptions options = BootstrapOptions::from_env());

    bool is_client() const noexcept override { return rank_ < peer_; }
    std::vector<std::byte> exchange(std::span<const std::byte> mine) override;
    void send_ack(uint32_t ack) override;
    uint32_t read_ack() override;
    void close() noexcept override {}

    int peer() const noexcept { return peer_; }

private:
    std::shared_ptr<detail::CommHandle> comm_;
    int rank_ = 0;
    int peer_ = 0;
    BootstrapOptions options_;
};

/// `thread.initRDMA(size, make_mpi_oob(comm, peer))`.
std::unique_ptr<OobChannel> make_mpi_oob(const Communicator& comm, int peer,
                                         BootstrapOptions options = BootstrapOptions::from_env());

}  // namespace coyote::mpi
