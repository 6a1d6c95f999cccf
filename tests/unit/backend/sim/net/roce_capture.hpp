// Test support for the packet sniffer tests: example 11's capture on a cThread (start, stop, records brought back
// with LOCAL_SYNC) and the RoCEv2 frames of a capture, parsed.
#pragma once

#include <coyote/cThread.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "unit/rdma_test_support.hpp"

namespace coyote_test {

/// Big-endian field of `n` bytes at `p`.
inline uint64_t be(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
}

/// One captured frame: where it starts in the capture and what its headers say.
struct Frame {
    const uint8_t* p = nullptr;
    std::size_t len = 0; ///< Ethernet header + IP total length
    unsigned opcode() const { return p[42]; }
    uint32_t dest_qp() const { return static_cast<uint32_t>(be(p + 46, 4) & 0xffffff); }
    uint32_t psn() const { return static_cast<uint32_t>(be(p + 50, 4) & 0xffffff); }
    uint64_t reth_vaddr() const { return be(p + 54, 8); }
    uint32_t reth_len() const { return static_cast<uint32_t>(be(p + 66, 4)); }
    bool ack_req() const { return (p[50] & 0x80) != 0; }
    unsigned aeth_syndrome() const { return p[54]; }
    uint64_t dst_mac() const { return be(p, 6); }
    uint64_t src_mac() const { return be(p + 6, 6); }
    uint32_t src_ip() const { return static_cast<uint32_t>(be(p + 26, 4)); }
    uint32_t dst_ip() const { return static_cast<uint32_t>(be(p + 30, 4)); }
    /// Payload between the transport headers and the pad + ICRC.
    std::pair<const uint8_t*, std::size_t> payload(std::size_t headers) const {
        const std::size_t pad = (p[43] >> 4) & 3;
        return {p + headers, len - headers - pad - 4};
    }
};

/// The frames of a capture of `size` bytes: each padded to whole 64-byte beats.
inline std::vector<Frame> parse(const uint8_t* cap, uint64_t size) {
    std::vector<Frame> out;
    for (uint64_t off = 0; off + 64 <= size;) {
        Frame f{cap + off, 14 + static_cast<std::size_t>(be(cap + off + 16, 2))};
        check(be(f.p + 12, 2) == 0x0800 && f.p[23] == 17 && be(f.p + 36, 2) == 4791,
              "record at " + std::to_string(off) + " is a RoCEv2 frame");
        out.push_back(f);
        off += (f.len + 63) / 64 * 64;
    }
    return out;
}

/// Example 11's capture: a huge-page buffer offloaded to the card, the buffer registers, CTRL_1, no filter, start.
class Capture {
public:
    explicit Capture(coyote::cThread& t) : t_(t) {
        cap_ = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::HPF, static_cast<uint32_t>(k_len)}));
        std::memset(cap_, 0, k_len);
        sync_.addr = cap_;
        t.invoke(coyote::CoyoteOper::LOCAL_OFFLOAD, sync_);
        t.setCSR(reinterpret_cast<uint64_t>(cap_), 6);
        t.setCSR(k_len, 7);
        t.setCSR(static_cast<uint64_t>(t.getCtid()), 8);
        t.setCSR(1, 1);
        t.setCSR(0, 2);
        t.setCSR(1, 0);
        check(t.getCSR(3) == 1, "the sniffer runs");
    }
    /// Stops, brings the records back and parses them.
    std::vector<Frame> stop() {
        t_.setCSR(0, 0); // stop: what the NICs appended is written
        check(t_.getCSR(3) == 0, "the sniffer stopped");
        t_.invoke(coyote::CoyoteOper::LOCAL_SYNC, sync_);
        return parse(cap_, t_.getCSR(4));
    }

private:
    static constexpr uint64_t k_len = coyote::HUGE_PAGE_SIZE;
    coyote::cThread& t_;
    uint8_t* cap_ = nullptr;
    coyote::syncSg sync_{.addr = nullptr, .len = k_len};
};

}  // namespace coyote_test
