// coyote-mpi sim backend: which wire the emulated NIC uses and how (the sim-net settings).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace coyote::detail::sim::net {

/// Which wire carries a queue pair's requests.
enum class WireMode { automatic, shm, tcp };

/// The wire settings, read once when a NIC is created.
struct WireConfig {
    WireMode mode = WireMode::automatic;
    std::string addr;     ///< COYOTE_SIM_WIRE_ADDR (empty: pick a default)
    uint16_t port = 0;    ///< COYOTE_SIM_WIRE_PORT (0: ephemeral)
    std::chrono::milliseconds io_timeout{30000}; ///< COYOTE_SIM_WIRE_TIMEOUT_MS
    bool deny_cma = false; ///< COYOTE_SIM_DENY_CMA=1: window copies fail as if ptrace access were denied (tests)
    /// COYOTE_SIM_PULL_MIN: shm WRITEs of at least this many bytes are offered to a polling target, which copies
    /// the payload itself (net/pull_line.hpp); 0: the initiator always copies.
    uint64_t pull_min = 16384;
    /// COYOTE_SIM_WIRE_CONGESTION: the TCP wire's congestion control (auto, system or a name; tcp/congestion.hpp).
    std::string congestion = "auto";
    /// COYOTE_SIM_WIRE_CPUS: the CPUs of the TCP wire's threads (inherit, all or a list; tcp/wire_cpus.hpp).
    std::string cpus = "inherit";

    /// Whether a WRITE of `len` bytes is large enough to be offered (pull_min).
    bool pulls(uint64_t len) const noexcept { return pull_min != 0 && len >= pull_min; }
};

/// Reads the sim-net settings; throws invalid_argument naming a malformed variable.
WireConfig wire_config_from_env();

}  // namespace coyote::detail::sim::net
