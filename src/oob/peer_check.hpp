// coyote-mpi: checks of a peer's queue pair message (ibvQ and backend endpoint bytes) before anything is sent
// back to it.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace coyote::detail {

class Device;

/// Why the 64-byte ibvQ at the start of `message` is not one a Coyote peer sends (too short, no IP, a qpn
/// beyond 24 bits, a PSN beyond 24 bits, a gid that is not 32 hex digits); empty when it is well formed.
std::string check_ibvq_bytes(std::span<const std::byte> message);

/// check_ibvq_bytes, then the backend's check of the endpoint bytes after the ibvQ; empty when both pass.
std::string check_peer_message(const Device& dev, std::span<const std::byte> message);

}  // namespace coyote::detail
