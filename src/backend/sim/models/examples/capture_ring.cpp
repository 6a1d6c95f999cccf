// coyote-mpi sim backend: the packet sniffer's capture buffer in shared memory: its filter (the example's --no-*
// options), reservations, and the TapCache through which NICs of any process append to it.
#include "backend/sim/models/examples/capture_ring.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "backend/sim/segments.hpp"

namespace coyote::detail::sim::sniffer {

namespace {

constexpr uint64_t k_ring_magic = 0x3146464e53594f43ULL; // "COYSNFF1"
constexpr uint64_t k_low = 0xffffffffULL;
constexpr uint64_t k_closed = uint64_t{1} << 63;
constexpr std::size_t k_beat = 64;

uint64_t reserved(uint64_t s) { return s & k_low; }
uint64_t committed(uint64_t s) { return (s >> 32) & 0x7fffffffULL; }

/// Filter bits (the example's --no-* options).
enum Bit : unsigned {
    no_ipv4 = 8, no_ipv6 = 9, no_arp = 16, no_icmp4 = 18, no_icmp6 = 20, no_udp4 = 22, no_udp4_payload = 23,
    no_udp6 = 24, no_udp6_payload = 25, no_tcp4 = 26, no_tcp4_payload = 27, no_roce4 = 30, no_roce4_payload = 31
};

unsigned at(std::span<const std::byte> f, std::size_t i) { return i < f.size() ? static_cast<unsigned>(f[i]) : 0u; }

/// Length of a RoCEv2 frame's headers (Ethernet .. BTH and its AETH / RETH), as the example's converter counts.
std::size_t roce_headers(std::span<const std::byte> f) {
    const unsigned op = at(f, 42);
    const bool aeth = op == 0x10 || op == 0x0d || op == 0x0f || op == 0x11;
    const bool reth = op == 0x0a || op == 0x06 || op == 0x0b || op == 0x0c;
    return std::size_t{14 + 20 + 8 + 12} + (aeth ? 4u : 0u) + (reth ? 16u : 0u);
}

/// Bytes of `f` the filter keeps (0: the frame is dropped), decided as Coyote's packet_filter decides on a frame's
/// first beat: first the drop bits, then the payload bits in the order UDP/IPv4, UDP/IPv6, TCP/IPv4, RoCEv2/IPv4.
/// The filter takes a frame for RoCEv2 when it is UDP/IPv4 with bytes 36, 37 = 0xb7, 0x12 (it compares the UDP
/// destination port with its bytes swapped): RoCEv2 frames on the wire carry 0x12, 0xb7 (port 4791, as the emulated
/// NIC and Coyote's RoCE stack send them), so the RoCEv2 bits leave them alone and the UDP/IPv4 bits apply to them.
std::size_t filtered_length(std::span<const std::byte> f, uint64_t cfg) {
    const auto on = [&](unsigned b) { return ((cfg >> b) & 1) != 0; };
    const unsigned type = (at(f, 12) << 8) | at(f, 13);
    const bool ipv4 = type == 0x0800, ipv6 = type == 0x86dd, arp = type == 0x0806;
    const unsigned proto4 = at(f, 23), next6 = at(f, 20);
    const bool icmp4 = ipv4 && proto4 == 0x01, udp4 = ipv4 && proto4 == 0x11, tcp4 = ipv4 && proto4 == 0x06;
    const bool icmp6 = ipv6 && next6 == 0x3a, udp6 = ipv6 && next6 == 0x11;
    const bool roce4 = udp4 && at(f, 36) == 0xb7 && at(f, 37) == 0x12;
    if ((ipv4 && on(no_ipv4)) || (ipv6 && on(no_ipv6)) || (arp && on(no_arp)) || (icmp4 && on(no_icmp4)) ||
        (icmp6 && on(no_icmp6)) || (udp4 && on(no_udp4)) || (udp6 && on(no_udp6)) || (tcp4 && on(no_tcp4)) ||
        (roce4 && on(no_roce4)))
        return 0;
    const std::size_t all = f.size();
    if (udp4 && on(no_udp4_payload)) return std::min<std::size_t>(all, 14 + 20 + 8);
    if (udp6 && on(no_udp6_payload)) return std::min<std::size_t>(all, 14 + 40 + 8);
    if (tcp4 && on(no_tcp4_payload)) return std::min<std::size_t>(all, 14 + 20 + 20);
    if (roce4 && on(no_roce4_payload)) return std::min(all, roce_headers(f));
    return all;
}

RingHead& head(const ShmSegment& ring) { return *static_cast<RingHead*>(ring.get()); }

}  // namespace

std::string ring_name(int32_t pid, uint64_t id) {
    return "/coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + ".sniff" + std::to_string(id);
}

ShmSegment create_ring(uint64_t id, uint64_t len, uint64_t filter) {
    const uint64_t cap = std::min(len, k_ring_max);
    const std::string name = ring_name(::getpid(), id);
    ShmSegment seg = ShmSegment::create(name, k_ring_data + cap); // a fresh segment reads as zeros
    track_segment(name);
    auto* h = new (seg.get()) RingHead();
    h->filter = filter;
    h->capacity = cap;
    std::atomic_thread_fence(std::memory_order_release);
    h->magic = k_ring_magic;
    return seg;
}

ShmSegment open_ring(int32_t pid, uint64_t id) noexcept {
    try {
        ShmSegment seg = ShmSegment::open(ring_name(pid, id));
        if (seg.size() < k_ring_data) return {};
        const RingHead& h = head(seg);
        if (h.magic != k_ring_magic || h.capacity > seg.size() - k_ring_data) return {};
        return seg;
    } catch (...) {
        return {};
    }
}

void ring_append(const ShmSegment& ring, std::span<const std::byte> frame) noexcept {
    RingHead& h = head(ring);
    const std::size_t keep = filtered_length(frame, h.filter);
    if (keep == 0) return;
    const uint64_t want = (keep + k_beat - 1) / k_beat * k_beat;
    // The header is shared with other processes: the capacity is bounded by the mapping each time.
    const uint64_t cap = std::min<uint64_t>(h.capacity, ring.size() - k_ring_data);
    uint64_t s = h.state.load(std::memory_order_acquire);
    uint64_t n = 0;
    do {
        if ((s & k_closed) != 0 || reserved(s) >= cap) return;
        n = std::min(want, cap - reserved(s));
    } while (!h.state.compare_exchange_weak(s, s + n, std::memory_order_acq_rel, std::memory_order_acquire));
    std::memcpy(ring.bytes() + k_ring_data + reserved(s), frame.data(), std::min<uint64_t>(keep, n));
    h.state.fetch_add(n << 32, std::memory_order_release);
}

bool ring_closed(const ShmSegment& ring) noexcept {
    return (head(ring).state.load(std::memory_order_acquire) & k_closed) != 0;
}

bool ring_settled(const ShmSegment& ring, uint64_t& end) noexcept {
    const uint64_t s = head(ring).state.load(std::memory_order_acquire);
    end = reserved(s);
    return committed(s) == reserved(s);
}

uint64_t ring_close(const ShmSegment& ring, std::chrono::milliseconds wait) noexcept {
    RingHead& h = head(ring);
    const uint64_t end = reserved(h.state.fetch_or(k_closed, std::memory_order_acq_rel));
    const auto deadline = std::chrono::steady_clock::now() + wait;
    // A writer between its reservation and its commit is copying one frame; one killed there is given up on.
    while (committed(h.state.load(std::memory_order_acquire)) != end && std::chrono::steady_clock::now() < deadline)
        ::sched_yield();
    return end;
}

void TapCache::capture(Target t, const RoceExchange& x, Parts parts) noexcept {
    std::lock_guard lk(mtx_);
    if (t.pid != target_.pid || t.id != target_.id) {
        seg_ = open_ring(t.pid, t.id);
        target_ = t;
    }
    if (!seg_) return;
    RingSink sink(seg_);
    exchange_frames(x, parts, sink);
    if (ring_closed(seg_)) seg_ = ShmSegment(); // the capture stopped: its memory is not kept mapped here
}

void TapCache::release(Target t) noexcept {
    std::lock_guard lk(mtx_);
    if (t.pid != target_.pid || t.id != target_.id) return;
    seg_ = ShmSegment();
    target_ = {}; // opened again if the target comes back (the rendezvous read as none for a moment)
}

}  // namespace coyote::detail::sim::sniffer
