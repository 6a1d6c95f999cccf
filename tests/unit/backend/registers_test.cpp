// Register words of writeQpContext / doArpLookup: the codec against hand-computed values, and what the
// sim NIC decodes from cThread's writes in both register layouts (AVX 4-word stores, legacy single words).
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "backend/registers.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"

using coyote::CoyoteOper;
using coyote::ibvQp;
namespace det = coyote::detail;
namespace sim = coyote::detail::sim;

namespace {

constexpr uint32_t k_port = 0x4838; // 18488, DEF_PORT
constexpr uint32_t k_remote_ip = 0x0A010203; // 10.1.2.3

/// Known queue pair: local qpn 0x45 (vFPGA 1, ctid 5), psn 0x123456; remote qpn 0xC7, psn 0xABCDEF,
/// rkey 0xDEADBEEF, vaddr 0x7f1234567000, IP 10.1.2.3.
ibvQp known_qp() {
    ibvQp qp;
    std::memset(static_cast<void*>(&qp), 0, sizeof(qp));
    qp.local.qpn = 0x45;
    qp.local.psn = 0x123456;
    qp.local.ip_addr = 0x0A000001;
    det::fill_gid(qp.local, qp.local.ip_addr);
    qp.remote.qpn = 0xC7;
    qp.remote.psn = 0xABCDEF;
    qp.remote.rkey = 0xDEADBEEF;
    qp.remote.vaddr = reinterpret_cast<void*>(0x7f1234567000ULL);
    qp.remote.ip_addr = k_remote_ip;
    det::fill_gid(qp.remote, k_remote_ip);
    return qp;
}

}  // namespace

TEST(Registers, QpContextWordsMatchHandComputedValues) {
    const ibvQp qp = known_qp();
    EXPECT_STREQ(qp.remote.gid, "0a0102030a0102030a0102030a010203");
    const auto w = det::encode_qp_context(qp, k_port);
    // ctx w0 = local.qpn[23:0] | remote.rkey << 32
    EXPECT_EQ(w.ctx[0], 0xDEADBEEF00000045ULL);
    // ctx w1 = local.psn[23:0] | remote.psn[23:0] << 24
    EXPECT_EQ(w.ctx[1], 0x0000ABCDEF123456ULL);
    // ctx w2 = remote.vaddr[47:0]
    EXPECT_EQ(w.ctx[2], 0x00007F1234567000ULL);
    // conn w0 = local.qpn[15:0] | remote.qpn[23:0] << 16 | port << 40
    EXPECT_EQ(w.conn[0], 0x0048380000C70045ULL);
    // conn w1 = gid(8) << 32 | gid(0); gid(i) = "0a010203" byte-swapped = 0x0302010a
    EXPECT_EQ(w.conn[1], 0x0302010A0302010AULL);
    EXPECT_EQ(w.conn[2], 0x0302010A0302010AULL);

    const auto d = det::decode_qp_ctx(w.ctx);
    EXPECT_EQ(d.local_qpn, 0x45u);
    EXPECT_EQ(d.remote_rkey, 0xDEADBEEFu);
    EXPECT_EQ(d.local_psn, 0x123456u);
    EXPECT_EQ(d.remote_psn, 0xABCDEFu);
    EXPECT_EQ(d.remote_vaddr, 0x7f1234567000ULL);
    const auto c = det::decode_conn(w.conn);
    EXPECT_EQ(c.local_qpn, 0x45u);
    EXPECT_EQ(c.remote_qpn, 0xC7u);
    EXPECT_EQ(c.port, k_port);
    EXPECT_EQ(c.remote_ip(), k_remote_ip);
}

TEST(Registers, WideFieldsAreTruncatedToTheirWidth) {
    ibvQp qp = known_qp();
    qp.local.qpn = 0xFF123456;  // 24 bits in ctx, 16 bits in conn
    qp.local.psn = 0xFFFFFFFF;
    qp.remote.vaddr = reinterpret_cast<void*>(0xFFFF800000001000ULL);
    const auto w = det::encode_qp_context(qp, 0x12345);
    EXPECT_EQ(w.ctx[0] & 0xFFFFFFFFULL, 0x123456ULL);
    EXPECT_EQ(w.ctx[1] & 0xFFFFFFULL, 0xFFFFFFULL);
    EXPECT_EQ(w.ctx[2], 0x800000001000ULL);
    EXPECT_EQ(w.conn[0] & 0xFFFFULL, 0x3456ULL);
    EXPECT_EQ((w.conn[0] >> 40) & 0xFFFFULL, 0x2345ULL);
}

namespace {

/// A copy of `bytes` with byte `i` set to `v`.
template <typename Bytes>
Bytes with_byte(Bytes bytes, std::size_t i, uint8_t v) {
    bytes[i] = std::byte{v};
    return bytes;
}

class SimRegisters : public testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        ::setenv("COYOTE_BACKEND", "sim", 1);
        ::setenv("COYOTE_SIM_SHELL", GetParam() ? "avx=1,rdma=1" : "avx=0,rdma=1", 1);
        ::setenv("COYOTE_SIM_WIRE", "shm", 1);
    }
    void TearDown() override { ::unsetenv("COYOTE_SIM_SHELL"); }

    static sim::NicShared* nic(det::ShmSegment& seg) {
        seg = det::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
        return static_cast<sim::NicShared*>(seg.get());
    }

    /// The message of the error a 64-byte RDMA WRITE on `t` raises ("no error" if it raises none).
    static std::string write_error(coyote::cThread& t) {
        try {
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, coyote::rdmaSg{.len = 64});
        } catch (const coyote::Error& e) {
            return e.what();
        }
        return "no error";
    }
};

}  // namespace

// cThread writes the words (AVX: one 4-word store per register; legacy: 40,41,42 then 44,45,46, committed on
// the last word); the NIC's decoded queue pair holds exactly the hand-computed fields.
TEST_P(SimRegisters, NicDecodesWhatWriteQpContextWrote) {
    coyote::cThread t(0, ::getpid());
    ASSERT_EQ(t.getShellConfig().en_avx, GetParam());
    ibvQp* qp = t.getQpair();
    ASSERT_NE(qp, nullptr);
    const ibvQp known = known_qp();
    const uint32_t lqpn = det::make_qpn(0, t.getCtid());
    qp->local.psn = known.local.psn;
    qp->remote = known.remote;
    t.writeQpContext(k_port);

    det::ShmSegment seg;
    sim::NicShared* n = nic(seg);
    const sim::QpView v = sim::read_qp(n->qp[t.getCtid()]);
    EXPECT_EQ(v.flags & (sim::QpSlot::k_ctx | sim::QpSlot::k_conn), sim::QpSlot::k_ctx | sim::QpSlot::k_conn);
    EXPECT_EQ(v.local_qpn, lqpn);
    EXPECT_EQ(v.remote_rkey, 0xDEADBEEFu);
    EXPECT_EQ(v.local_psn, 0x123456u);
    EXPECT_EQ(v.remote_psn, 0xABCDEFu);
    EXPECT_EQ(v.remote_vaddr, 0x7f1234567000ULL);
    EXPECT_EQ(v.remote_qpn, 0xC7u);
    EXPECT_EQ(v.remote_ip, k_remote_ip);
    EXPECT_EQ(v.port, k_port);
    EXPECT_EQ(n->qp[t.getCtid()].expected_psn.load(), 0xABCDEFu) << "the target expects the peer's PSN";

    // ARP of an IP no endpoint announced: no entry, counted; a post then fails locally, naming the IP.
    const uint64_t misses = n->counters.arp_misses.load();
    t.doArpLookup(k_remote_ip);
    EXPECT_EQ(n->counters.arp_misses.load(), misses + 1);
    void* buf = t.getMem({coyote::CoyoteAllocType::REG, 4096, true});
    ASSERT_NE(buf, nullptr);
    const std::string what = write_error(t); // fails without an ARP entry
    EXPECT_NE(what.find("no ARP entry for 10.1.2.3"), std::string::npos) << what;
}

// A context whose qpn carries another vFPGA's bits is rejected and counted; the table keeps its old state.
TEST_P(SimRegisters, ForeignVfidContextIsRejected) {
    coyote::cThread t(0, ::getpid());
    ibvQp* qp = t.getQpair();
    const uint32_t own = qp->local.qpn;
    det::ShmSegment seg;
    sim::NicShared* n = nic(seg);
    const uint64_t before = n->counters.ctx_rejected.load();
    qp->local.qpn = det::make_qpn(3, t.getCtid());
    qp->remote = known_qp().remote;
    t.writeQpContext(k_port);
    EXPECT_EQ(n->counters.ctx_rejected.load(), before + 2) << "QP context and connection context both rejected";
    const sim::QpView v = sim::read_qp(n->qp[t.getCtid()]);
    EXPECT_EQ(v.flags & (sim::QpSlot::k_ctx | sim::QpSlot::k_conn), 0u);
    qp->local.qpn = own;
    (void)t.getMem({coyote::CoyoteAllocType::REG, 4096, true});
    const std::string what = write_error(t); // fails without a context
    EXPECT_NE(what.find("has no QP context"), std::string::npos) << what;
}

// Two ctids of one process wired to each other (exportQp / connectQp): RDMA works through the decoded state.
TEST_P(SimRegisters, LoopbackQueuePairInOneProcess) {
    coyote::cThread a(0, ::getpid());
    coyote::cThread b(0, ::getpid());
    auto* ba = static_cast<uint8_t*>(a.getMem({coyote::CoyoteAllocType::REG, 8192, true}));
    auto* bb = static_cast<uint8_t*>(b.getMem({coyote::CoyoteAllocType::REG, 8192, true}));
    const auto ea = a.exportQp();
    const auto eb = b.exportQp();
    EXPECT_EQ(ea.size(), 64 + sim::k_endpoint_size);
    a.connectQp(eb);
    b.connectQp(ea);
    for (int i = 0; i < 8192; ++i) {
        ba[i] = static_cast<uint8_t>(i);
        bb[i] = 0xEE;
    }
    a.invoke(CoyoteOper::REMOTE_RDMA_WRITE, coyote::rdmaSg{.local_offs = 100, .remote_offs = 1000, .len = 500});
    EXPECT_EQ(a.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE), 1u);
    EXPECT_EQ(b.checkCompleted(CoyoteOper::LOCAL_WRITE), 1u);
    for (int i = 0; i < 8192; ++i) {
        const uint8_t want = (i >= 1000 && i < 1500) ? static_cast<uint8_t>(i - 900) : 0xEE;
        ASSERT_EQ(bb[i], want) << "byte " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Layouts, SimRegisters, testing::Values(true, false),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "avx" : "legacy"; });

TEST(Endpoint, MalformedBytesAreProtocolErrors) {
    sim::Endpoint ep;
    sim::fill_host_identity(ep);
    ep.ip = k_remote_ip;
    ep.state_name = "/coyote-sim.0.1.d0v0.state";
    ep.nic_name = "/coyote-sim.0.1.d0v0.nic";
    auto bytes = sim::encode_endpoint(ep);
    ASSERT_EQ(bytes.size(), sim::k_endpoint_size);
    const sim::Endpoint back = sim::decode_endpoint(bytes);
    EXPECT_EQ(back.ip, k_remote_ip);
    EXPECT_TRUE(back.same_host(ep));
    EXPECT_EQ(back.nic_name, ep.nic_name);

    auto expect_protocol = [](std::vector<std::byte> b, const char* words) {
        try {
            (void)sim::decode_endpoint(b);
            ADD_FAILURE() << "expected a protocol error for " << words;
        } catch (const coyote::Error& e) {
            EXPECT_EQ(e.code(), make_error_code(coyote::Errc::protocol));
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    expect_protocol(with_byte(bytes, 0, 0), "bad magic");
    expect_protocol(with_byte(bytes, 4, 9), "version 9");
    auto bad = bytes;
    bad.resize(100);
    expect_protocol(bad, "length 100");
    expect_protocol({}, "no sim endpoint bytes");
    bad = bytes;
    std::memset(&bad[88], 'x', 64); // unterminated segment name
    expect_protocol(bad, "not terminated");
    bad = bytes;
    std::memcpy(&bad[88], "/etc/passwd", 12);
    expect_protocol(bad, "not a coyote-sim segment");
}

TEST(Frame, MalformedHeadersAreRefused) {
    sim::FrameHeader h;
    h.type = sim::FrameType::write;
    h.len = 100;
    h.payload_len = 100;
    h.psn = 0x123;
    h.req_id = 77;
    auto b = sim::encode_frame(h);
    sim::FrameHeader out;
    std::string err;
    ASSERT_TRUE(sim::decode_frame(b, out, err)) << err;
    EXPECT_EQ(out.req_id, 77u);
    EXPECT_EQ(out.len, 100u);

    auto refuse = [&](std::array<std::byte, sim::k_frame_header_size> x, const char* words) {
        std::string e;
        sim::FrameHeader o;
        EXPECT_FALSE(sim::decode_frame(x, o, e)) << words;
        EXPECT_NE(e.find(words), std::string::npos) << e;
    };
    refuse(with_byte(b, 0, 1), "bad frame magic");
    refuse(with_byte(b, 4, 2), "version");
    refuse(with_byte(b, 5, 42), "unknown frame type");
    h.payload_len = 99; // payload != len for a WRITE
    refuse(sim::encode_frame(h), "payload length 99");
    h.payload_len = h.len = 0x7FFFFFFF;
    refuse(sim::encode_frame(h), "exceeds MAX_TRANSFER_SIZE");
    sim::FrameHeader n;
    n.type = sim::FrameType::nak;
    n.check = 0;
    refuse(sim::encode_frame(n), "NAK with unknown reason");
    n.check = 1;
    n.payload_len = 5000;
    refuse(sim::encode_frame(n), "NAK text limit");
}
