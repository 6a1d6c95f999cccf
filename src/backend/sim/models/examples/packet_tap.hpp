// coyote-mpi sim backend: the capture interface between the emulated NIC and the packet sniffer model
// (Coyote example 11). The NIC hands every Ethernet frame it sends or receives to capture(); a sniffer model
// that is capturing on that device keeps it. The frames of RDMA traffic are RoCEv2 frames, built with
// build_roce_frame(). Where the sniffer writes (card memory) is given by the device through attach_card_port().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace coyote::detail::sim::sniffer {

/// Which way a frame goes through the NIC.
enum class Direction : uint8_t { rx, tx };

/// The NIC of `device` sent (tx) or received (rx) `frame` (from the destination MAC, without FCS). Cheap when no
/// sniffer captures on the device; safe from any thread; takes only the sniffers' own locks (never the model lock).
void capture(uint32_t device, Direction dir, std::span<const std::byte> frame) noexcept;

/// True while a sniffer captures on `device` (the NIC may skip building frames otherwise).
bool active(uint32_t device) noexcept;

/// Card memory of one vFPGA as the sniffer writes it: the card copy of host virtual address `vaddr`.
class CardPort {
public:
    /// Called from the model's callbacks, with the vFPGA's model lock held (do not take it again).
    virtual void write(uint64_t vaddr, std::span<const std::byte> data) = 0;

protected:
    ~CardPort() = default;
};

/// The device of (device, vfid) offers its card memory (null: withdraws it). Without a port the sniffer writes
/// the host buffer itself.
void attach_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept;
/// attach_card_port unless a port is attached to (device, vfid) already (a test's stand-in stays).
void offer_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept;
/// Withdraws `port` from (device, vfid) if it is the one attached.
void withdraw_card_port(uint32_t device, int32_t vfid, CardPort* port) noexcept;

/// The fields of one RoCEv2 packet (base transport header and its extension) between two emulated NICs.
struct RoceHeader {
    uint64_t src_mac = 0, dst_mac = 0; ///< 48-bit MACs
    uint32_t src_ip = 0, dst_ip = 0;   ///< IPv4, host byte order
    uint8_t opcode = 0;                ///< BTH opcode (RC: 0x06..0x0a writes, 0x0c read request, 0x0d..0x10 read responses, 0x11 ACK)
    uint32_t dest_qp = 0;              ///< 24 bits
    uint32_t psn = 0;                  ///< 24 bits
    bool ack_req = false;
    uint64_t vaddr = 0;                ///< RETH (write first / only, read request)
    uint32_t rkey = 0;                 ///< RETH
    uint32_t dma_len = 0;              ///< RETH
    uint8_t syndrome = 0;              ///< AETH (ACK, read response first / last / only)
    uint32_t msn = 0;                  ///< AETH, 24 bits
};

/// Ethernet + IPv4 + UDP (port 4791) + BTH + RETH / AETH (as the opcode needs) + payload + ICRC (zero: the
/// emulated wire has no CRC).
std::vector<std::byte> build_roce_frame(const RoceHeader& h, std::span<const std::byte> payload);

/// Path MTU of the emulated RoCE wire: messages are cut into packets of this much payload.
inline constexpr std::size_t k_roce_mtu = 4096;

/// One RDMA operation as the requester's NIC saw it, for capture().
struct RoceExchange {
    enum class Kind : uint8_t { write, send, read } kind = Kind::write;
    uint64_t local_mac = 0, remote_mac = 0;
    uint32_t local_ip = 0, remote_ip = 0;
    uint32_t local_qpn = 0, remote_qpn = 0; ///< 24 bits
    uint32_t psn = 0;                       ///< of the first packet; the packets of a message count up from it
    uint64_t vaddr = 0;
    uint32_t rkey = 0;
    std::span<const std::byte> data; ///< the message's payload (sent for write / send, received for read)
};

/// Captures the packets of `x` on `device`: the request packets (tx: WRITE / SEND FIRST..LAST or ONLY, or the READ
/// request) and the answer (rx: the ACK, or READ RESPONSE FIRST..LAST or ONLY), cut at k_roce_mtu. Call only
/// when active(device).
void capture_exchange(uint32_t device, const RoceExchange& x) noexcept;

}  // namespace coyote::detail::sim::sniffer
