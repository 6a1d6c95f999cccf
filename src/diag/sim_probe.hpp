// coyote-mpi diagnostics: what the sim backend's shared segments tell about a vFPGA of any process of this user
// (completion counters, the NIC's rejection counters and expected PSNs) and who the peer of a queue pair is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "backend/sim/net/wire_format.hpp"
#include "diag/doctor.hpp"

namespace coyote::detail::diag::sim_probe {

/// The NIC segment of vFPGA (device, vfid) of process `pid`.
std::string nic_name(int32_t pid, uint32_t device, int32_t vfid);
/// Reads the completion counters of `ctid` from the state segment of (pid, device, vfid), LOCAL_WRITE with the
/// completions deferred in a burst (landed, not yet claimed); false if unreadable or of another layout version.
bool completions(int32_t pid, uint32_t device, int32_t vfid, int32_t ctid, uint32_t out[k_classes]) noexcept;
/// The rejection counters of the NIC published in segment `name`, and its latest refusal of a request to queue
/// pair `ctid` (-1: none asked about).
Rejections rejections(const std::string& name, int32_t ctid) noexcept;
/// The PSN queue pair `ctid` of the NIC in segment `name` accepts next.
std::optional<uint32_t> expected_psn(const std::string& name, int32_t ctid) noexcept;

/// The peer a sim queue pair connects to, from the endpoint bytes after the 64-byte ibvQ.
struct PeerId {
    bool same_host = false;
    sim::Endpoint ep; ///< pid, start time, device, vfid, ctid, NIC segment name
};
/// Decodes `endpoint` (nullopt when it is not a sim endpoint).
std::optional<PeerId> peer_of(std::span<const std::byte> endpoint) noexcept;

}  // namespace coyote::detail::diag::sim_probe
