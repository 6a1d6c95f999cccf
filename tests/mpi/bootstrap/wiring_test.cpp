// Queue-pair wiring over MPI on the sim backend: all-to-all wiring, RDMA WRITE to every peer with
// verification, the QP context each rank wrote against what its peers published, patterns, ctid limit.
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include "bootstrap_test_support.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "backend/device.hpp"
#include "backend/registers.hpp"

using namespace coyote::mpi;
using coyote::CoyoteOper;
using coyote_test::wait_count;

namespace {

uint8_t pattern_byte(int from, int to, std::size_t i) {
    return static_cast<uint8_t>((from * 31 + to * 7 + static_cast<int>(i)) & 0xFF);
}

WiringOptions small(PeerPattern p) {
    WiringOptions o;
    o.buffer_size = 64 * 1024;
    o.pattern = p;
    return o;
}

}  // namespace

TEST(Wiring, AllToAllThenWriteToEveryPeer) {
    Communicator comm;
    const auto dev = select_device(comm);
    QpSet qps(comm, dev, small(PeerPattern::all));
    const int me = comm.rank();
    ASSERT_EQ(qps.peers().size(), static_cast<std::size_t>(comm.size() - 1));
    const std::size_t len = 4096;
    // Source data at offset 0, the peer's data lands at offset 32 KiB of our buffer for that peer.
    for (int p : qps.peers()) {
        auto* b = static_cast<uint8_t*>(qps.buffer(p));
        for (std::size_t i = 0; i < len; ++i) b[i] = pattern_byte(me, p, i);
        std::memset(b + 32768, 0, len);
        qps.thread(p).clearCompleted();
    }
    barrier(comm);
    for (int p : qps.peers())
        qps.thread(p).invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             coyote::rdmaSg{.local_offs = 0, .remote_offs = 32768, .len = static_cast<uint32_t>(len)});
    for (int p : qps.peers()) {
        auto& t = qps.thread(p);
        ASSERT_TRUE(wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1)) << "write to rank " << p << " not completed";
        ASSERT_TRUE(wait_count(t, CoyoteOper::LOCAL_WRITE, 1)) << "no data from rank " << p;
        const auto* b = static_cast<const uint8_t*>(qps.buffer(p));
        std::size_t bad = 0;
        for (std::size_t i = 0; i < len; ++i) bad += b[32768 + i] != pattern_byte(p, me, i);
        EXPECT_EQ(bad, 0u) << "bytes from rank " << p << " differ";
    }
    barrier(comm);
}

TEST(Wiring, QpContextMatchesWhatPeersPublished) {
    Communicator comm;
    const auto dev = select_device(comm);
    // The context registers as the device holds them right after each connectQp.
    std::map<int, coyote::detail::QpContextWords> regs;
    bool avx = true;
    WiringOptions o = small(PeerPattern::all);
    o.on_connected = [&](int peer, coyote::cThread& t) {
        auto device = coyote::detail::open_device(t.getDevice(), t.getVfid());
        coyote::detail::QpContextWords w;
        if (t.getShellConfig().en_avx) {
            // AVX layout: a read returns word 0 of the 256-bit register (the rest is checked in the legacy run).
            w.ctx[0] = device->read_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::RDMA_CTX_REG));
            w.conn[0] = device->read_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::RDMA_CONN_REG));
        } else {
            for (uint32_t i = 0; i < 3; ++i) {
                w.ctx[i] = device->read_cnfg(static_cast<uint32_t>(coyote::CnfgLegRegs::RDMA_CTX_REG_0) + i);
                w.conn[i] = device->read_cnfg(static_cast<uint32_t>(coyote::CnfgLegRegs::RDMA_CONN_REG_0) + i);
            }
        }
        avx = t.getShellConfig().en_avx;
        regs[peer] = w;
    };
    QpSet qps(comm, dev, std::move(o));
    // Every rank publishes, per destination, the ibvQ it exported; gather them independently of the QpSet.
    const int n = comm.size();
    std::vector<coyote::ibvQ> mine(static_cast<std::size_t>(n));
    std::memset(static_cast<void*>(mine.data()), 0, sizeof(coyote::ibvQ) * mine.size());
    for (int p : qps.peers()) mine[static_cast<std::size_t>(p)] = *reinterpret_cast<const coyote::ibvQ*>(qps.connection(p).local_blob.data());
    std::vector<coyote::ibvQ> theirs(static_cast<std::size_t>(n));
    ASSERT_EQ(MPI_Alltoall(mine.data(), sizeof(coyote::ibvQ), MPI_BYTE, theirs.data(), sizeof(coyote::ibvQ), MPI_BYTE,
                           comm.get()),
              MPI_SUCCESS);
    if (const char* e = std::getenv("COYOTE_TEST_EXPECT_LEGACY"); e != nullptr && std::string(e) == "1") {
        ASSERT_FALSE(avx) << "COYOTE_SIM_SHELL=avx=0 should select the legacy register layout";
    }
    for (int p : qps.peers()) {
        const coyote::ibvQ& pub = theirs[static_cast<std::size_t>(p)];
        const coyote::ibvQp& qp = *qps.thread(p).getQpair();
        EXPECT_EQ(qp.remote.qpn, pub.qpn) << "peer " << p;
        EXPECT_EQ(qp.remote.psn, pub.psn) << "peer " << p;
        EXPECT_EQ(qp.remote.vaddr, pub.vaddr) << "peer " << p;
        EXPECT_EQ(qp.remote.ip_addr, pub.ip_addr) << "peer " << p;
        // The words in the device registers decode to the local QP and the peer's published values.
        ASSERT_TRUE(regs.count(p));
        const auto ctx = coyote::detail::decode_qp_ctx(regs[p].ctx);
        const auto conn = coyote::detail::decode_conn(regs[p].conn);
        EXPECT_EQ(ctx.local_qpn, qp.local.qpn & 0xFFFFFFu) << "peer " << p;
        EXPECT_EQ(ctx.remote_rkey, pub.rkey) << "peer " << p;
        EXPECT_EQ(conn.local_qpn, qp.local.qpn & 0xFFFFu) << "peer " << p;
        EXPECT_EQ(conn.remote_qpn, pub.qpn & 0xFFFFFFu) << "peer " << p;
        EXPECT_EQ(conn.port, 18488u) << "peer " << p;
        if (avx) continue;
        EXPECT_EQ(ctx.local_psn, qp.local.psn & 0xFFFFFFu) << "peer " << p;
        EXPECT_EQ(ctx.remote_psn, pub.psn & 0xFFFFFFu) << "peer " << p;
        EXPECT_EQ(ctx.remote_vaddr, reinterpret_cast<uint64_t>(pub.vaddr) & 0xFFFFFFFFFFFFull) << "peer " << p;
        EXPECT_EQ(conn.remote_ip(), pub.ip_addr) << "peer " << p;
    }
    barrier(comm);
}

TEST(Wiring, RingAndRecursiveDoublingConnectTheirNeighbours) {
    Communicator comm;
    const auto dev = select_device(comm);
    for (auto p : {PeerPattern::ring, PeerPattern::recursive_doubling}) {
        QpSet qps(comm, dev, small(p));
        EXPECT_EQ(qps.peers(), peers_for(p, comm.rank(), comm.size())) << pattern_name(p);
        for (int q : qps.peers()) {
            EXPECT_NE(qps.thread(q).getQpair()->remote.ip_addr, 0u);
            EXPECT_NE(qps.thread(q).getQpair()->remote.vaddr, nullptr);
            EXPECT_EQ(qps.connection(q).remote_blob.size(), qps.connection(q).local_blob.size());
        }
        EXPECT_THROW((void)qps.connection(comm.rank()), coyote::Error);
    }
}

TEST(Wiring, AsymmetricExplicitListsFailOnEveryRank) {
    Communicator comm;
    const auto dev = select_device(comm);
    WiringOptions o = small(PeerPattern::explicit_list);
    // Rank 0 lists rank 1; nobody lists rank 0 back.
    if (comm.rank() == 0) o.peers = {1};
    EXPECT_THROW(QpSet(comm, dev, std::move(o)), coyote::Error);
}

TEST(Wiring, TooManyQueuePairsNamesTheCountAndCheaperPatterns) {
    Communicator comm;
    const auto dev = select_device(comm);
    WiringOptions o = small(PeerPattern::all);
    o.buffer_size = 4096;
    // A failure on one rank only (rank 0 asks for too much) must still fail every rank, not hang.
    if (comm.rank() == 0) {
        o.pattern = PeerPattern::explicit_list;
        o.peers.clear();
        for (int i = 0; i < 70; ++i) o.peers.push_back(1 + i % (comm.size() - 1));  // duplicates collapse
        o.buffer_size = 0;  // invalid: local failure
    }
    try {
        QpSet q(comm, dev, std::move(o));
        FAIL() << "no error";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find(comm.rank() == 0 ? "buffer size 0" : "failed on rank 0"), std::string::npos)
            << e.what();
        // Every rank throws the failing rank's code, once (before: the others said "...: invalid argument: peer
        // gone", although no rank was gone).
        EXPECT_EQ(e.code(), coyote::make_error_code(coyote::Errc::invalid_argument)) << e.what();
        EXPECT_EQ(std::string(e.what()).find("peer gone"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find("invalid argument: invalid argument"), std::string::npos) << e.what();
    }
}

TEST(Wiring, CtidBudgetErrorNamesTheCountAndCheaperPatterns) {
    try {
        check_ctid_budget(70, PeerPattern::all, 71, 3);
        FAIL() << "70 queue pairs accepted";
    } catch (const coyote::Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("70 queue pairs requested"), std::string::npos) << w;
        EXPECT_NE(w.find("ring needs 2"), std::string::npos) << w;
        EXPECT_NE(w.find("need 7"), std::string::npos) << w;  // ceil(log2 71)
    }
    EXPECT_NO_THROW(check_ctid_budget(64, PeerPattern::all, 65, 0));
}

TEST(Wiring, ExhaustedCtidsFailEveryRankWithAClearMessage) {
    Communicator comm;
    const auto dev = select_device(comm);
    // Rank 0 takes every ctid of its vFPGA but one: its QpSet needs size()-1 >= 1 more.
    std::vector<std::unique_ptr<coyote::cThread>> hogs;
    if (comm.rank() == 0)
        for (int i = 0; i < coyote::N_CTID_MAX; ++i)
            hogs.push_back(std::make_unique<coyote::cThread>(dev.vfid, ::getpid(), dev.device));
    try {
        QpSet q(comm, dev, small(PeerPattern::all));
        FAIL() << "no error although rank 0 has no ctid left";
    } catch (const coyote::Error& e) {
        const std::string w = e.what();
        if (comm.rank() == 0) {
            EXPECT_NE(w.find("ctids are taken"), std::string::npos) << w;
            EXPECT_NE(w.find("ring: 2"), std::string::npos) << w;
        } else {
            EXPECT_NE(w.find("failed on rank 0"), std::string::npos) << w;
        }
    }
}
