// The packet sniffer model (Coyote example 11) fed by the emulated NIC: a client process whose vFPGA runs
// packet_sniffer WRITEs and READs over the shm wire to a server process while capturing; the records the sniffer
// wrote to card memory (brought back with LOCAL_SYNC, as the example does) are parsed as RoCEv2 frames and checked
// against what was sent: opcodes, queue pairs, PSNs, RETH, and the payload bytes.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Child;

namespace {

constexpr uint32_t k_buf = 1u << 20;
constexpr uint32_t k_write_len = 5000; ///< two packets at the 4096-byte MTU
constexpr uint32_t k_read_len = 300;
constexpr uint32_t k_read_from = 8192;  ///< remote offset of the READ
constexpr uint32_t k_read_into = 65536; ///< local offset of the READ

/// Big-endian field of `n` bytes at `p`.
uint64_t be(const uint8_t* p, int n) {
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
    /// Payload between the transport headers and the pad + ICRC.
    std::pair<const uint8_t*, std::size_t> payload(std::size_t headers) const {
        const std::size_t pad = (p[43] >> 4) & 3;
        return {p + headers, len - headers - pad - 4};
    }
};

/// The frames of a capture of `size` bytes: each padded to whole 64-byte beats.
std::vector<Frame> parse(const uint8_t* cap, uint64_t size) {
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

int server(uint16_t port) {
    coyote_test::child_env("shm");
    coyote::cThread t(0, ::getpid());
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port));
    coyote_test::fill(buf, k_buf, 7);
    t.connSync(false); // (1) ready
    t.connSync(false); // (2) the client is done
    return 0;
}

int client(uint16_t port) {
    coyote_test::child_env("shm");
    ::setenv("COYOTE_SIM_MODEL", "packet_sniffer", 1);
    coyote::cThread t(0, ::getpid());
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port, "127.0.0.1"));
    coyote_test::fill(buf, k_write_len, 3);
    // Example 11's capture setup: a huge-page buffer offloaded to the card, buffer registers, CTRL_1, no filter, start.
    const uint64_t cap_len = coyote::HUGE_PAGE_SIZE;
    auto* cap = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::HPF, static_cast<uint32_t>(cap_len)}));
    std::memset(cap, 0, cap_len);
    coyote::syncSg sync{.addr = cap, .len = cap_len};
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, sync);
    t.setCSR(reinterpret_cast<uint64_t>(cap), 6);
    t.setCSR(cap_len, 7);
    t.setCSR(static_cast<uint64_t>(t.getCtid()), 8);
    t.setCSR(1, 1);
    t.setCSR(0, 2);
    t.setCSR(1, 0);
    check(t.getCSR(3) == 1, "the sniffer runs");
    t.connSync(true); // (1)
    t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = k_write_len});
    coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "WRITE");
    t.invoke(CoyoteOper::REMOTE_RDMA_READ,
             rdmaSg{.local_offs = k_read_into, .remote_offs = k_read_from, .len = k_read_len});
    coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "READ");
    t.setCSR(0, 0); // stop: the queued frames are written
    t.invoke(CoyoteOper::LOCAL_SYNC, sync);
    const uint64_t size = t.getCSR(4);
    t.connSync(true); // (2)

    const coyote::ibvQp& qp = *t.getQpair();
    const auto frames = parse(cap, size);
    check(frames.size() == 5, std::to_string(frames.size()) + " frames captured, expected 5 (WRITE FIRST, WRITE "
                                                              "LAST, ACK, READ request, READ RESPONSE ONLY)");
    const unsigned ops[5] = {0x06, 0x08, 0x11, 0x0c, 0x10};
    for (int i = 0; i < 5; ++i)
        check(frames[static_cast<size_t>(i)].opcode() == ops[i], "opcode of frame " + std::to_string(i));
    // Requests go to the server's queue pair, answers to ours; a message's packets count PSNs up.
    for (int i : {0, 1, 3}) check(frames[static_cast<size_t>(i)].dest_qp() == qp.remote.qpn, "request dest QP");
    for (int i : {2, 4}) check(frames[static_cast<size_t>(i)].dest_qp() == qp.local.qpn, "answer dest QP");
    check(frames[1].psn() == ((frames[0].psn() + 1) & 0xffffff), "WRITE LAST follows WRITE FIRST");
    check(frames[2].psn() == frames[1].psn(), "the ACK acknowledges the last packet");
    const auto remote = reinterpret_cast<uint64_t>(qp.remote.vaddr);
    check(frames[0].reth_vaddr() == remote && frames[0].reth_len() == k_write_len, "WRITE FIRST RETH");
    check(frames[3].reth_vaddr() == remote + k_read_from && frames[3].reth_len() == k_read_len, "READ request RETH");
    // Payloads: headers are 14 + 20 + 8 + 12 bytes, + 16 (RETH) or + 4 (AETH).
    const auto w0 = frames[0].payload(70), w1 = frames[1].payload(54), rr = frames[4].payload(58);
    check(w0.second == 4096 && std::memcmp(w0.first, buf, 4096) == 0, "WRITE FIRST carries the first 4096 bytes");
    check(w1.second == k_write_len - 4096 && std::memcmp(w1.first, buf + 4096, w1.second) == 0,
          "WRITE LAST carries the rest");
    check(rr.second == k_read_len && coyote_test::mismatch(rr.first, 0, k_read_len, 7, k_read_from) < 0 &&
              std::memcmp(rr.first, buf + k_read_into, k_read_len) == 0,
          "READ RESPONSE carries the server's bytes, as they arrived");
    return 0;
}

}  // namespace

TEST(RdmaSniffer, ThePacketSnifferRecordsTheNicsTrafficAsItWasSent) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child srv([&] { return server(port); }, 60);
    Child cli([&] { return client(port); }, 60);
    EXPECT_EQ(cli.wait(std::chrono::seconds(70)), 0);
    EXPECT_EQ(srv.wait(std::chrono::seconds(70)), 0);
}
