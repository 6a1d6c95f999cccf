// coyote-mpi sim backend: the NIC's packet capture: the RoCEv2 frames of each request and its answer, as the
// requester's and the target's NICs send and receive them, go to the packet sniffer capturing each NIC: the one of
// its device in its process (whose capture buffer id the NIC publishes in its sniff word), else the one published in
// the device's rendezvous (models/examples/packet_tap.hpp, rendezvous.hpp). Over the shm wire the requester's
// process captures for both sides; over the TCP wire each side captures its own frames as they pass.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "backend/sim/net/nic_impl.hpp"

namespace coyote::detail::sim::net {

namespace {

using sniffer::Parts;
using sniffer::RoceExchange;

/// A copy of `len` bytes of this process at `addr`, read through the kernel: memory unmapped meanwhile (a window
/// withdrawn) reads as zeros instead of crashing the capture.
std::vector<std::byte> payload_at(uint64_t addr, uint32_t len) {
    std::vector<std::byte> out(len);
    if (addr == 0 || len == 0) return out;
    iovec local{out.data(), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    if (::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(len))
        std::fill(out.begin(), out.end(), std::byte{0});
    return out;
}

/// The exchange of `req` between the requester (`req.src_ip`, MAC `requester_mac`) and the responder.
RoceExchange exchange_of(const RdmaRequest& req, uint64_t requester_mac, uint64_t responder_mac,
                         uint32_t responder_ip) {
    using Kind = RoceExchange::Kind;
    const Kind kind = req.op == RdmaOpcode::read ? Kind::read : req.op == RdmaOpcode::write ? Kind::write : Kind::send;
    return {.kind = kind, .local_mac = requester_mac, .remote_mac = responder_mac, .local_ip = req.src_ip,
            .remote_ip = responder_ip, .local_qpn = req.src_qpn, .remote_qpn = req.dst_qpn, .psn = req.psn,
            .vaddr = req.vaddr, .rkey = req.rkey, .len = req.len};
}

}  // namespace

uint64_t NicImpl::mac_of(uint32_t ip) const noexcept {
    {
        std::lock_guard lk(mtx_);
        if (const auto it = known_by_ip_.find(ip); it != known_by_ip_.end()) return it->second.mac;
    }
    return (uint64_t{0x02} << 40) | ip; // the default of identity.hpp: 02:00:<the four IP bytes>
}

void NicImpl::tap_requester_now(sniffer::Target t, Parts parts, const RdmaRequest& req, uint32_t peer_ip, uint64_t data,
                                uint8_t nak) noexcept {
    try {
        const bool with_data = nak == 0 && (parts == Parts::request ? req.op != RdmaOpcode::read
                                                                    : req.op == RdmaOpcode::read);
        const std::vector<std::byte> payload = payload_at(with_data ? data : 0, with_data ? req.len : 0);
        RoceExchange x = exchange_of(req, host_.mac_address(), mac_of(peer_ip), peer_ip);
        x.data = payload.empty() ? nullptr : payload.data();
        x.nak = nak;
        tap_.capture(t, x, parts);
    } catch (...) {
        // Out of memory: the frames are lost, as in a full FIFO.
    }
}

void NicImpl::tap_served_now(sniffer::Target t, const RdmaRequest& req, const Verdict& v, FrameType answer) noexcept {
    try {
        const uint64_t at = v.check != Check::ok ? 0 : (v.in_window ? v.win.vaddr : v.buf.vaddr) + v.offset;
        const std::vector<std::byte> payload = payload_at(answer == FrameType::nak ? 0 : at, req.len);
        RoceExchange x = exchange_of(req, mac_of(req.src_ip), host_.mac_address(), host_.ip_address());
        x.data = answer == FrameType::nak ? nullptr : payload.data();
        x.nak = answer == FrameType::nak ? sniffer::k_nak_remote_access : 0;
        tap_.capture(t, x, Parts::both);
    } catch (...) {
        // Out of memory: the frames are lost, as in a full FIFO.
    }
}

void NicImpl::tap_shm(const RdmaRequest& req, ShmPeer& peer, uint64_t local_addr, uint8_t nak, sniffer::Target mine,
                      sniffer::Target theirs) noexcept {
    try {
        const std::vector<std::byte> payload = payload_at(nak == 0 ? local_addr : 0, req.len);
        RoceExchange x = exchange_of(req, host_.mac_address(), peer.ep.mac, peer.ep.ip);
        x.data = nak == 0 ? payload.data() : nullptr;
        x.nak = nak;
        // The same frames pass both NICs: out of this one and into the peer's, and back.
        if (mine) tap_.capture(mine, x, Parts::both);
        if (theirs) peer.tap.capture(theirs, x, Parts::both);
    } catch (...) {
        // Out of memory: the frames are lost, as in a full FIFO.
    }
}

}  // namespace coyote::detail::sim::net
