// RoCEv2 frames (Ethernet / IPv4 / UDP 4791 / BTH / RETH or AETH / payload / ICRC) for the packet sniffer, and
// the packets of one RDMA operation as the NICs of both sides send and receive them.
#include "backend/sim/models/examples/packet_tap.hpp"

#include <algorithm>

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

std::vector<std::byte> build_roce_frame(const RoceHeader& h, const std::byte* payload, std::size_t payload_len) {
    const std::size_t ext = (has_reth(h.opcode) ? 16u : 0u) + (has_aeth(h.opcode) ? 4u : 0u);
    const std::size_t pad = (4 - payload_len % 4) % 4;
    const std::size_t udp_len = 8 + 12 + ext + payload_len + pad + 4;
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
    if (payload != nullptr)
        f.insert(f.end(), payload, payload + payload_len);
    else
        f.insert(f.end(), payload_len, std::byte{0});
    f.insert(f.end(), pad + 4, std::byte{0}); // pad and ICRC
    return f;
}

namespace {

/// RC opcodes of the first, middle, last and only packet of a message.
struct Opcodes {
    uint8_t first, middle, last, only;
};
constexpr Opcodes k_write_ops{0x06, 0x07, 0x08, 0x0a};
constexpr Opcodes k_send_ops{0x00, 0x01, 0x02, 0x04};
constexpr Opcodes k_read_resp_ops{0x0d, 0x0e, 0x0f, 0x10};
constexpr uint8_t k_read_request = 0x0c, k_ack = 0x11;

std::size_t packets_of(uint32_t len) { return len == 0 ? 1 : (len + k_roce_mtu - 1) / k_roce_mtu; }

/// Hands the packets of one message of `len` bytes at `data` (null: zeros) with header `h` to `sink`, cut at
/// k_roce_mtu, PSNs counting up.
void message_frames(RoceHeader h, const Opcodes& ops, const std::byte* data, uint32_t len, FrameSink& sink) {
    const std::size_t packets = packets_of(len);
    const uint32_t psn0 = h.psn;
    for (std::size_t i = 0; i < packets; ++i) {
        h.opcode = packets == 1 ? ops.only : i == 0 ? ops.first : i + 1 == packets ? ops.last : ops.middle;
        h.psn = (psn0 + static_cast<uint32_t>(i)) & 0xffffffu;
        h.ack_req = i + 1 == packets;
        const std::size_t at = i * k_roce_mtu;
        const std::size_t part = std::min<std::size_t>(k_roce_mtu, len - at);
        sink.put(build_roce_frame(h, data == nullptr ? nullptr : data + at, part));
    }
}

/// The header of a packet of `x` towards the responder (`to_responder`) or back to the requester.
RoceHeader header_of(const RoceExchange& x, bool to_responder) {
    RoceHeader h;
    h.src_mac = to_responder ? x.local_mac : x.remote_mac;
    h.dst_mac = to_responder ? x.remote_mac : x.local_mac;
    h.src_ip = to_responder ? x.local_ip : x.remote_ip;
    h.dst_ip = to_responder ? x.remote_ip : x.local_ip;
    h.dest_qp = to_responder ? x.remote_qpn : x.local_qpn;
    h.psn = x.psn;
    return h;
}

void request_frames(const RoceExchange& x, FrameSink& sink) {
    RoceHeader out = header_of(x, true);
    out.vaddr = x.vaddr;
    out.rkey = x.rkey;
    out.dma_len = x.len;
    if (x.kind != RoceExchange::Kind::read) {
        message_frames(out, x.kind == RoceExchange::Kind::write ? k_write_ops : k_send_ops, x.data, x.len, sink);
        return;
    }
    out.opcode = k_read_request;
    out.ack_req = true;
    sink.put(build_roce_frame(out, nullptr, 0));
}

void answer_frames(const RoceExchange& x, FrameSink& sink) {
    RoceHeader back = header_of(x, false);
    if (x.kind == RoceExchange::Kind::read && x.nak == 0) {
        message_frames(back, k_read_resp_ops, x.data, x.len, sink);
        return;
    }
    // An ACK of the last packet, or a NAK of the first (a READ request is one packet).
    back.opcode = k_ack;
    back.syndrome = x.nak;
    const bool first = x.nak != 0 || x.kind == RoceExchange::Kind::read;
    back.psn = (x.psn + (first ? 0u : static_cast<uint32_t>(packets_of(x.len)) - 1)) & 0xffffffu;
    sink.put(build_roce_frame(back, nullptr, 0));
}

}  // namespace

void exchange_frames(const RoceExchange& x, Parts parts, FrameSink& sink) noexcept {
    try {
        if ((static_cast<unsigned>(parts) & static_cast<unsigned>(Parts::request)) != 0) request_frames(x, sink);
        if ((static_cast<unsigned>(parts) & static_cast<unsigned>(Parts::answer)) != 0) answer_frames(x, sink);
    } catch (...) {
        // Out of memory building a frame: the sniffer loses it, as a full FIFO would.
    }
}

}  // namespace coyote::detail::sim::sniffer
