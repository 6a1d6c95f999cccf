// coyote-mpi: checks of a peer's queue pair message (ibvQ and backend endpoint bytes) before anything is sent
// back to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace coyote {
class OobChannel;
}

namespace coyote::detail {

class Device;

/// The server side of connSync read `ack` from the client: throws Errc::peer_gone when it is the stock close
/// message (an int32 0 followed by the end of the connection: the client called closeConn, or its cThread was
/// destroyed because it exited or failed) instead of the client's sync. A stock client's connSync also sends 0
/// but keeps the connection open: waits up to 50 ms for the end, and only after a 0.
void check_sync_ack(const OobChannel& oob, uint32_t ack);

/// Why the 64-byte ibvQ at the start of `message` is not one a Coyote peer sends (too short, no IP, a qpn
/// beyond 24 bits, a PSN beyond 24 bits, a gid that is not 32 hex digits); empty when it is well formed.
std::string check_ibvq_bytes(std::span<const std::byte> message);

/// check_ibvq_bytes, then the backend's check of the endpoint bytes after the ibvQ; empty when both pass.
std::string check_peer_message(const Device& dev, std::span<const std::byte> message);

}  // namespace coyote::detail
