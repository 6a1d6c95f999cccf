// coyote-mpi sim backend: the shell as the user-logic model sees it (coyote::sim::Shell of one SimDevice).
#pragma once

#include "backend/sim/models/input_hold.hpp"
#include "backend/sim/sim_device.hpp"

namespace coyote::detail::sim {

/// Forwards the model's calls to its vFPGA (sim_streams.cpp, beside the output streams it feeds).
class SimDevice::ShellPort final : public coyote::sim::Shell, public InputHold {
public:
    explicit ShellPort(SimDevice& d) : d_(d) {}
    ~ShellPort() override;

    void push(uint32_t dest, std::span<const std::byte> data) override;
    std::span<std::byte> reserve(uint32_t dest, std::size_t max_bytes) override;
    void commit(uint32_t dest, std::size_t n) override;
    uint64_t output_demand(uint32_t dest) const override;
    uint64_t csr_read(uint32_t offs) const override;
    void csr_write(uint32_t offs, uint64_t value) override;
    void raise_interrupt(int32_t ctid, int32_t value) override;
    int32_t vfid() const noexcept override;
    uint32_t device() const noexcept override;
    bool hold_input() override { return d_.hold_input(); }
    void release_input(uint32_t dest) override { d_.release_input(dest); }

private:
    SimDevice& d_;
};

}  // namespace coyote::detail::sim
