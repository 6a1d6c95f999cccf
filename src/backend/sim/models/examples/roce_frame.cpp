// RoCEv2 frames (Ethernet / IPv4 / UDP 4791 / BTH / RETH or AETH / payload / ICRC) for the packet sniffer.
#include "backend/sim/models/examples/packet_tap.hpp"

namespace coyote::detail::sim::sniffer {

namespace {

constexpr uint16_t k_roce_port = 4791;

bool has_reth(uint8_t op) { return op == 0x06 || op == 0x0a || op == 0x0b || op == 0x0c; }
bool has_aeth(uint8_t op) { return op == 0x0d || op == 0x0f || op == 0x10 || op == 0x11; }

/// Appends the low `n` bytes of `v`, most significant first (network order).
void put(std::vector<std::byte>& f, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) f.push_back(static_cast<std::byte>(v >> (8 * i)));
}

uint16_t ip_checksum(const std::byte* p, std::size_t n) {
    uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2)
        s += (static_cast<uint32_t>(p[i]) << 8) | static_cast<uint32_t>(p[i + 1]);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

}  // namespace

std::vector<std::byte> build_roce_frame(const RoceHeader& h, std::span<const std::byte> payload) {
    const std::size_t ext = (has_reth(h.opcode) ? 16u : 0u) + (has_aeth(h.opcode) ? 4u : 0u);
    const std::size_t pad = (4 - payload.size() % 4) % 4;
    const std::size_t udp_len = 8 + 12 + ext + payload.size() + pad + 4;
    std::vector<std::byte> f;
    f.reserve(14 + 20 + udp_len);
    put(f, h.dst_mac, 6);
    put(f, h.src_mac, 6);
    put(f, 0x0800, 2);
    // IPv4: version 4, IHL 5, DSCP/ECN 0, total length, id 0, don't fragment, TTL 64, UDP, checksum, addresses.
    put(f, 0x4500, 2);
    put(f, 20 + udp_len, 2);
    put(f, 0, 2);
    put(f, 0x4000, 2);
    put(f, 0x4011, 2);
    put(f, 0, 2);
    put(f, h.src_ip, 4);
    put(f, h.dst_ip, 4);
    const uint16_t csum = ip_checksum(f.data() + 14, 20);
    f[24] = static_cast<std::byte>(csum >> 8);
    f[25] = static_cast<std::byte>(csum);
    // UDP: source port from the queue pair, RoCEv2 port, length, no checksum.
    put(f, 0xc000 | (h.dest_qp & 0x3fff), 2);
    put(f, k_roce_port, 2);
    put(f, udp_len, 2);
    put(f, 0, 2);
    // BTH: opcode, solicited/migration/pad count/version, partition key, dest QP, ack request + PSN.
    put(f, h.opcode, 1);
    put(f, static_cast<uint64_t>(pad) << 4, 1);
    put(f, 0xffff, 2);
    put(f, h.dest_qp & 0xffffff, 4);
    put(f, (h.ack_req ? 0x80000000u : 0u) | (h.psn & 0xffffff), 4);
    if (has_reth(h.opcode)) {
        put(f, h.vaddr, 8);
        put(f, h.rkey, 4);
        put(f, h.dma_len, 4);
    }
    if (has_aeth(h.opcode)) put(f, (static_cast<uint64_t>(h.syndrome) << 24) | (h.msn & 0xffffff), 4);
    f.insert(f.end(), payload.begin(), payload.end());
    f.insert(f.end(), pad + 4, std::byte{0}); // pad and ICRC
    return f;
}

}  // namespace coyote::detail::sim::sniffer
