// coyote-mpi sim backend: the capture interface between the emulated NIC and the packet sniffer model
// (Coyote example 11). A sniffer that starts capturing on a device creates a capture buffer in shared memory
// (an image of the host buffer: frames zero-padded to 64-byte beats, back to back, cut at its length), publishes
// its id in the NIC state of every NIC of that device in its process, and publishes its process and the id in the
// device's host-wide rendezvous (rendezvous.hpp), which the NICs of that device in the other processes of the user
// read at most every k_watch_period, as the hardware's sniffer sees all traffic of its card. A NIC's frames go to
// the sniffer of its device in its own process if there is one, else to the rendezvous's. Whoever moves a packet
// from or to a captured NIC (the NIC threads and posting threads of its process, or a same-host peer applying a
// request over the shm wire) appends the RoCEv2 frames to that buffer; the model copies what was appended to card
// memory. A frame between two captured NICs is recorded twice: as the one sends it and as the other receives it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "backend/sim/models/examples/rendezvous.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim::sniffer {

/// Which way a frame goes through the NIC.
enum class Direction : uint8_t { rx, tx };

/// The NIC of `device` in this process sent (tx) or received (rx) `frame` (from the destination MAC, without
/// FCS): appended to the capture of the sniffer of `device`, if one captures. Safe from any thread.
void capture(uint32_t device, Direction dir, std::span<const std::byte> frame) noexcept;

/// True while a sniffer of this process captures on `device`.
bool active(uint32_t device) noexcept;

/// A NIC of `device` publishes the id of the capture buffer of a sniffer of this process capturing its traffic in
/// `*word` (0: none); attach_nic stores the current id at once. The word lives in the NIC's shared state, where
/// same-host peers read it too. detach_nic before the word goes away.
void attach_nic(uint32_t device, std::atomic<uint64_t>* word) noexcept;
void detach_nic(uint32_t device, std::atomic<uint64_t>* word) noexcept;

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
/// emulated wire has no CRC). A null `payload` pointer with a non-zero `payload_len` stands for zeros.
std::vector<std::byte> build_roce_frame(const RoceHeader& h, const std::byte* payload, std::size_t payload_len);
inline std::vector<std::byte> build_roce_frame(const RoceHeader& h, std::span<const std::byte> payload) {
    return build_roce_frame(h, payload.data(), payload.size());
}

/// Path MTU of the emulated RoCE wire: messages are cut into packets of this much payload.
inline constexpr std::size_t k_roce_mtu = k_path_mtu;

/// AETH syndrome of a NAK for a remote access error (what the target answers a request it rejects).
inline constexpr uint8_t k_nak_remote_access = 0x62;

/// One RDMA operation, always from the requester's side ("local" is the requester, "remote" the responder).
struct RoceExchange {
    enum class Kind : uint8_t { write, send, read } kind = Kind::write;
    uint64_t local_mac = 0, remote_mac = 0;
    uint32_t local_ip = 0, remote_ip = 0;
    uint32_t local_qpn = 0, remote_qpn = 0; ///< 24 bits
    uint32_t psn = 0;                       ///< of the first packet; the packets of a message count up from it
    uint64_t vaddr = 0;
    uint32_t rkey = 0;
    uint32_t len = 0;                ///< the message's length
    const std::byte* data = nullptr; ///< its payload (sent for write / send, received for read); null: zeros
    uint8_t nak = 0;                 ///< 0: answered (ACK / READ RESPONSE), else the AETH syndrome of the NAK
};

/// Which packets of an exchange to capture.
enum class Parts : uint8_t {
    request = 1, ///< WRITE / SEND FIRST..LAST or ONLY, or the READ request
    answer = 2,  ///< the ACK (of the last packet), READ RESPONSE FIRST..LAST or ONLY, or the NAK
    both = 3,
};

/// Where a sniffer's frames go.
class FrameSink {
public:
    virtual void put(std::span<const std::byte> frame) noexcept = 0;

protected:
    ~FrameSink() = default;
};

/// Hands the packets `parts` of `x` to `sink` in wire order, cut at k_roce_mtu (out of memory: frames are lost,
/// as in a full FIFO).
void exchange_frames(const RoceExchange& x, Parts parts, FrameSink& sink) noexcept;

/// A NIC's (or a same-host peer's) way to the capture buffer of a sniffer (published in a NIC's sniff word or in
/// the device's rendezvous): the buffer of process `pid` with id `id`, mapped on first use and kept until the
/// target changes, the buffer is found closed or release() lets go of it. Thread-safe.
class TapCache {
public:
    /// Appends the packets `parts` of `x` to capture buffer `t` (non-empty); a buffer that is gone or closed (the
    /// capture stopped) takes nothing.
    void capture(Target t, const RoceExchange& x, Parts parts) noexcept;
    /// Unmaps buffer `t` if it is the one mapped (its publication ended).
    void release(Target t) noexcept;

private:
    std::mutex mtx_;
    Target target_;
    ShmSegment seg_; ///< empty: the buffer could not be opened, or was closed
};

}  // namespace coyote::detail::sim::sniffer
