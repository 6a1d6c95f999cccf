// The packet sniffer model (Coyote example 11) fed by the emulated NIC: a client process WRITEs and READs to a
// server process while the packet_sniffer vFPGA of either or both captures, over the shm and the TCP wire; the
// records each sniffer wrote to card memory (brought back with LOCAL_SYNC, as the example does) are parsed as
// RoCEv2 frames and checked against what was sent: opcodes, addresses, queue pairs, PSNs, RETH, AETH, lengths and
// the payload bytes. Both NICs see the same frames: the requester sends the requests and receives the answers,
// the target receives the requests and sends the answers.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "unit/backend/sim/net/roce_capture.hpp"
#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::Capture;
using coyote_test::check;
using coyote_test::Child;
using coyote_test::Frame;

namespace {

constexpr uint32_t k_buf = 1u << 20;
constexpr uint32_t k_write_len = 5000; ///< two packets at the 4096-byte MTU
constexpr uint32_t k_read_len = 300;
constexpr uint32_t k_read_from = 8192;  ///< remote offset of the READ
constexpr uint32_t k_read_into = 65536; ///< local offset of the READ

/// Which processes capture, and on which wire.
struct Setup {
    const char* wire = "shm";
    bool client_sniffs = false, server_sniffs = false;
    bool rejected = false; ///< the client WRITEs past the server's buffer (NAK) instead of its WRITE and READ
};

constexpr uint32_t k_bad_len = 200;
constexpr uint32_t k_bad_offs = k_buf - 100; ///< the WRITE that crosses the end of the server's buffer

constexpr const char* k_client_ip = "10.77.0.1";
constexpr const char* k_server_ip = "10.77.0.2";
/// Two cards: a sniffer captures every NIC of its device on the host, so client and server sit on devices of their
/// own (numbers no other test uses: test programs running at the same time do not reach these sniffers).
constexpr uint32_t k_client_device = 60;
constexpr uint32_t k_server_device = 61;

uint32_t ip_of(const char* s) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    std::sscanf(s, "%u.%u.%u.%u", &a, &b, &c, &d);
    return (a << 24) | (b << 16) | (c << 8) | d;
}

/// A process of the pair: the sim with its wire and the IP of its device, the packet_sniffer model when it captures.
void process_env(const Setup& s, bool sniffs, uint32_t device, const char* ip) {
    coyote_test::child_env(s.wire);
    ::setenv(("COYOTE_SIM_IP_" + std::to_string(device)).c_str(), ip, 1);
    if (sniffs) ::setenv("COYOTE_SIM_MODEL", "packet_sniffer", 1);
}

/// What a capture of either side must hold: WRITE FIRST, WRITE LAST, ACK, READ request, READ RESPONSE ONLY, with
/// requests from the client to the server's queue pair and answers back to the client's.
void check_frames(const std::vector<Frame>& frames, const std::string& side, uint32_t client_qpn, uint32_t server_qpn,
                  uint64_t server_vaddr) {
    const auto who = [&](const std::string& what) { return side + ": " + what; };
    check(frames.size() == 5, who(std::to_string(frames.size()) + " frames captured, expected 5 (WRITE FIRST, WRITE "
                                                                   "LAST, ACK, READ request, READ RESPONSE ONLY)"));
    const unsigned ops[5] = {0x06, 0x08, 0x11, 0x0c, 0x10};
    for (int i = 0; i < 5; ++i)
        check(frames[static_cast<size_t>(i)].opcode() == ops[i], who("opcode of frame " + std::to_string(i)));
    const uint32_t cip = ip_of(k_client_ip), sip = ip_of(k_server_ip);
    for (int i : {0, 1, 3}) {
        const Frame& f = frames[static_cast<size_t>(i)];
        check(f.dest_qp() == server_qpn, who("request dest QP"));
        check(f.src_ip() == cip && f.dst_ip() == sip, who("request IPs"));
        check(f.src_mac() == ((uint64_t{2} << 40) | cip) && f.dst_mac() == ((uint64_t{2} << 40) | sip),
              who("request MACs"));
    }
    for (int i : {2, 4}) {
        const Frame& f = frames[static_cast<size_t>(i)];
        check(f.dest_qp() == client_qpn, who("answer dest QP"));
        check(f.src_ip() == sip && f.dst_ip() == cip, who("answer IPs"));
        check(f.aeth_syndrome() == 0, who("the answer is no NAK"));
    }
    check(frames[1].psn() == ((frames[0].psn() + 1) & 0xffffff), who("WRITE LAST follows WRITE FIRST"));
    check(frames[2].psn() == frames[1].psn(), who("the ACK acknowledges the last packet"));
    check(frames[3].psn() == ((frames[1].psn() + 1) & 0xffffff), who("the READ takes the next PSN"));
    check(frames[4].psn() == frames[3].psn(), who("the READ RESPONSE carries the request's PSN"));
    check(frames[0].ack_req() == false && frames[1].ack_req() && frames[3].ack_req(), who("ack requests"));
    check(frames[0].reth_vaddr() == server_vaddr && frames[0].reth_len() == k_write_len, who("WRITE FIRST RETH"));
    check(frames[3].reth_vaddr() == server_vaddr + k_read_from && frames[3].reth_len() == k_read_len,
          who("READ request RETH"));
    // IPv4 total lengths: 20 + UDP 8 + BTH 12 + RETH 16 / AETH 4 + payload + ICRC 4.
    check(frames[0].len == 14 + 20 + 8 + 12 + 16 + 4096 + 4, who("WRITE FIRST length"));
    check(frames[3].len == 14 + 20 + 8 + 12 + 16 + 4, who("READ request length"));
    check(frames[2].len == 14 + 20 + 8 + 12 + 4 + 4, who("ACK length"));
    // Payloads: headers are 14 + 20 + 8 + 12 bytes, + 16 (RETH) or + 4 (AETH).
    const auto w0 = frames[0].payload(70), w1 = frames[1].payload(54), rr = frames[4].payload(58);
    check(w0.second == 4096 && coyote_test::mismatch(w0.first, 0, 4096, 3) < 0,
          who("WRITE FIRST carries the first 4096 bytes"));
    check(w1.second == k_write_len - 4096 && coyote_test::mismatch(w1.first, 0, w1.second, 3, 4096) < 0,
          who("WRITE LAST carries the rest"));
    check(rr.second == k_read_len && coyote_test::mismatch(rr.first, 0, k_read_len, 7, k_read_from) < 0,
          who("READ RESPONSE carries the server's bytes"));
}

/// What a capture of either side must hold after the rejected WRITE: WRITE ONLY and the NAK of its PSN.
void check_nak(const std::vector<Frame>& frames, const std::string& side, uint32_t client_qpn, uint32_t server_qpn,
               uint64_t server_vaddr) {
    const auto who = [&](const std::string& what) { return side + ": " + what; };
    check(frames.size() == 2, who(std::to_string(frames.size()) + " frames captured, expected 2 (WRITE ONLY, NAK)"));
    check(frames[0].opcode() == 0x0a && frames[0].dest_qp() == server_qpn && frames[0].ack_req(), who("WRITE ONLY"));
    check(frames[0].reth_vaddr() == server_vaddr + k_bad_offs && frames[0].reth_len() == k_bad_len, who("its RETH"));
    check(frames[0].len == 14 + 20 + 8 + 12 + 16 + k_bad_len + 4, who("its length"));
    check(frames[1].opcode() == 0x11 && frames[1].dest_qp() == client_qpn, who("the answer is an ACK-opcode frame"));
    check(frames[1].aeth_syndrome() == 0x62, who("its AETH says NAK, remote access error"));
    check(frames[1].psn() == frames[0].psn(), who("the NAK names the WRITE's PSN"));
}

int server(uint16_t port, Setup s) {
    process_env(s, s.server_sniffs, k_server_device, k_server_ip);
    coyote::cThread t(0, ::getpid(), k_server_device);
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port));
    coyote_test::fill(buf, k_buf, 7);
    std::optional<Capture> cap;
    if (s.server_sniffs) cap.emplace(t);
    t.connSync(false); // (1) ready
    t.connSync(false); // (2) the client is done
    if (!cap) return 0;
    const coyote::ibvQp& qp = *t.getQpair();
    (s.rejected ? check_nak : check_frames)(cap->stop(), "server", qp.remote.qpn, qp.local.qpn,
                                            reinterpret_cast<uint64_t>(qp.local.vaddr));
    return 0;
}

int client(uint16_t port, Setup s) {
    process_env(s, s.client_sniffs, k_client_device, k_client_ip);
    coyote::cThread t(0, ::getpid(), k_client_device);
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port, "127.0.0.1"));
    coyote_test::fill(buf, k_write_len, 3);
    std::optional<Capture> cap;
    if (s.client_sniffs) cap.emplace(t);
    t.connSync(true); // (1)
    if (s.rejected) {
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.remote_offs = k_bad_offs, .len = k_bad_len});
        (void)coyote_test::wait_error(t);
        const std::vector<Frame> frames = cap ? cap->stop() : std::vector<Frame>{};
        t.connSync(true); // (2)
        const coyote::ibvQp& qp = *t.getQpair();
        if (cap)
            check_nak(frames, "client", qp.local.qpn, qp.remote.qpn, reinterpret_cast<uint64_t>(qp.remote.vaddr));
        return 0;
    }
    t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = k_write_len});
    coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "WRITE");
    t.invoke(CoyoteOper::REMOTE_RDMA_READ,
             rdmaSg{.local_offs = k_read_into, .remote_offs = k_read_from, .len = k_read_len});
    coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "READ");
    check(coyote_test::mismatch(buf + k_read_into, 0, k_read_len, 7, k_read_from) < 0, "the READ brought the bytes");
    std::vector<Frame> frames;
    if (cap) frames = cap->stop();
    t.connSync(true); // (2)
    if (!cap) return 0;
    const coyote::ibvQp& qp = *t.getQpair();
    check_frames(frames, "client", qp.local.qpn, qp.remote.qpn, reinterpret_cast<uint64_t>(qp.remote.vaddr));
    return 0;
}

void run(const Setup& s) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child srv([&] { return server(port, s); }, 60);
    Child cli([&] { return client(port, s); }, 60);
    EXPECT_EQ(cli.wait(std::chrono::seconds(70)), 0);
    EXPECT_EQ(srv.wait(std::chrono::seconds(70)), 0);
}

}  // namespace

TEST(RdmaSniffer, ThePacketSnifferRecordsTheNicsTrafficAsItWasSent) {
    run({.wire = "shm", .client_sniffs = true, .server_sniffs = false});
}

TEST(RdmaSniffer, TheTargetsSnifferRecordsWhatItsNicReceivedAndAnsweredOverShm) {
    run({.wire = "shm", .client_sniffs = false, .server_sniffs = true});
}

TEST(RdmaSniffer, BothSniffersRecordTheSameFramesOverTheTcpWire) {
    run({.wire = "tcp", .client_sniffs = true, .server_sniffs = true});
}

TEST(RdmaSniffer, BothSniffersRecordTheSameFramesOverShm) {
    run({.wire = "shm", .client_sniffs = true, .server_sniffs = true});
}

TEST(RdmaSniffer, BothSniffersRecordARejectedWriteAndItsNakOverTheTcpWire) {
    run({.wire = "tcp", .client_sniffs = true, .server_sniffs = true, .rejected = true});
}

TEST(RdmaSniffer, BothSniffersRecordARejectedWriteAndItsNakOverShm) {
    run({.wire = "shm", .client_sniffs = true, .server_sniffs = true, .rejected = true});
}
