// RDMA between two sim vFPGAs in two processes, over the shared-memory wire and the forced TCP wire:
// data movement and completion counting as Coyote counts them, back-pressure, every rejection path,
// peer loss, and reclaiming the segments of a killed peer.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/identity.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "support/rdma_scenarios.hpp"

using namespace std::chrono_literals;
using coyote::CoyoteOper;
using coyote::Errc;
using coyote::rdmaSg;
using namespace coyote_test; // Child, Peer, run_pair, check, fill, mismatch, wait_count, wait_error
namespace sim = coyote::detail::sim;

namespace {

constexpr uint32_t k_buf = 1u << 20;

struct Wire {
    const char* wire;
    bool avx;
};

std::string wire_name(const testing::TestParamInfo<Wire>& i) {
    return std::string(i.param.wire) + (i.param.avx ? "_avx" : "_legacy");
}

/// The child environment on wire `w`, with the register layout of `w` (avx or legacy).
void child_env(const Wire& w) {
    coyote_test::child_env(w.wire);
    ::setenv("COYOTE_SIM_SHELL", w.avx ? "avx=1" : "avx=0", 1);
}

sim::NicShared* own_nic(coyote::detail::ShmSegment& seg, int32_t vfid = 0) {
    seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, vfid) + ".nic");
    return static_cast<sim::NicShared*>(seg.get());
}

uint64_t rejected(sim::NicShared* n, sim::Check c) {
    return n->counters.rejected[static_cast<size_t>(c)].load();
}

class RdmaWire : public testing::TestWithParam<Wire> {};

}  // namespace

// Reference semantics (the shared scenario): the target of a WRITE counts LOCAL_WRITE, the initiator counts
// REMOTE_RDMA_WRITE; a READ's requester counts LOCAL_WRITE and REMOTE_RDMA_READ; the passive side counts nothing.
TEST_P(RdmaWire, WriteReadSendCountLikeCoyote) {
    const Wire w = GetParam();
    coyote_test::scenario::write_read_send([w] { child_env(w); }, k_buf);
}

// Many more operations than the 22-command window, large messages, both directions at once: back-pressure
// must throttle without deadlocking.
TEST_P(RdmaWire, BackPressureWithLargeWindowsDoesNotDeadlock) {
    const Wire w = GetParam();
    constexpr uint32_t n = 200, chunk = 64 * 1024;
    constexpr uint32_t size = 8u << 20;
    auto side = [](Peer& p) {
        coyote::cThread& t = p.t;
        fill(p.buf, size / 2, p.client ? 4 : 5);
        p.sync();
        for (uint32_t i = 0; i < n; ++i) {
            const uint64_t off = (i * uint64_t(chunk)) % (size / 2);
            t.invoke(i % 2 == 0 ? CoyoteOper::REMOTE_RDMA_WRITE : CoyoteOper::REMOTE_RDMA_READ,
                     rdmaSg{.local_offs = off, .remote_offs = size / 2 + off, .len = chunk});
        }
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n / 2, "writes");
        wait_count(t, CoyoteOper::REMOTE_RDMA_READ, n / 2, "reads");
        p.sync();
        // Each side got n/2 writes from its peer plus n/2 of its own READ responses.
        wait_count(t, CoyoteOper::LOCAL_WRITE, n, "LOCAL_WRITE");
        p.sync();
    };
    coyote_test::run_pair([w] { child_env(w); }, size, side, side, 120);
}

namespace {

/// What the client corrupts before its WRITE of 256 bytes at remote offset 4096.
enum class Fault { rkey, psn, bounds, unknown_qpn, no_context };

struct FaultCase {
    Fault fault;
    sim::Check check;
    const char* words; ///< text the error message must contain
};

void run_fault(const Wire& w, const FaultCase& fc) {
    const uint16_t port = coyote_test::free_port();
    Child server([&] {
        child_env(w);
        coyote::cThread t(0, ::getpid());
        uint8_t* buf = nullptr;
        if (fc.fault == Fault::no_context) {
            // Exchange endpoints but never write the QP context.
            buf = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::HPF, k_buf, true}));
            auto oob = coyote::make_tcp_oob(port, nullptr);
            (void)oob->exchange(t.exportQp());
            fill(buf, k_buf, 7);
            (void)oob->read_ack();
            oob->send_ack(1);
            (void)oob->read_ack(); // client done
            check(mismatch(buf, 0, k_buf, 7) < 0, "target buffer untouched");
            coyote::detail::ShmSegment seg;
            check(rejected(own_nic(seg), fc.check) == 1, "target counted the rejection");
            oob->send_ack(1);
            return 0;
        }
        buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port));
        fill(buf, k_buf, 7);
        t.connSync(false);
        t.connSync(false); // client done
        check(mismatch(buf, 0, k_buf, 7) < 0, "target buffer untouched (inside and outside the window)");
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0, "rejected write counts nothing at the target");
        coyote::detail::ShmSegment seg;
        const auto* nic = own_nic(seg);
        check(rejected(const_cast<sim::NicShared*>(nic), fc.check) == 1,
              std::string("target counted one rejection for check ") + sim::check_name(fc.check));
        t.connSync(false);
        return 0;
    });
    Child client([&] {
        child_env(w);
        coyote::cThread t(0, ::getpid());
        uint8_t* buf = nullptr;
        std::unique_ptr<coyote::OobChannel> oob;
        if (fc.fault == Fault::no_context) {
            buf = static_cast<uint8_t*>(t.getMem({coyote::CoyoteAllocType::HPF, k_buf, true}));
            oob = coyote::make_tcp_oob(port, "127.0.0.1");
            t.connectQp(oob->exchange(t.exportQp()));
            oob->send_ack(1);
            (void)oob->read_ack();
        } else {
            buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port, "127.0.0.1"));
            t.connSync(true);
        }
        fill(buf, k_buf, 8);
        coyote::ibvQp* qp = t.getQpair();
        uint64_t remote_offs = 4096;
        switch (fc.fault) {
        case Fault::rkey: qp->remote.rkey ^= 0x5a5a; break;
        case Fault::psn: qp->local.psn = (qp->local.psn + 5) & 0xFFFFFF; break;
        case Fault::unknown_qpn: qp->remote.qpn = (qp->remote.qpn & ~0x3Fu) | 0x3Bu; break;
        case Fault::bounds: remote_offs = 4u << 20; break; // beyond the (page-rounded) registration
        case Fault::no_context: break;
        }
        if (fc.fault != Fault::bounds && fc.fault != Fault::no_context) t.writeQpContext(coyote::DEF_PORT);
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = remote_offs, .len = 256});
        const coyote::Error e = wait_error(t);
        const std::string what = e.what();
        check(e.code() == make_error_code(Errc::remote_rejected), "error type is remote_rejected: " + what);
        check(what.find("RDMA WRITE rejected by ") != std::string::npos, "message names the operation: " + what);
        check(what.find(fc.words) != std::string::npos, std::string("message names the check '") + fc.words + "': " + what);
        check(t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == 0, "rejected write does not complete");
        if (fc.fault == Fault::no_context) {
            oob->send_ack(1);
            (void)oob->read_ack();
        } else {
            t.connSync(true);
            t.connSync(true);
        }
        return 0;
    });
    EXPECT_EQ(server.wait(), 0) << sim::check_name(fc.check);
    EXPECT_EQ(client.wait(), 0) << sim::check_name(fc.check);
}

}  // namespace

TEST_P(RdmaWire, BadRkeyIsRejected) {
    run_fault(GetParam(), {Fault::rkey, sim::Check::bad_rkey, "does not match the registered buffer's rkey"});
}
TEST_P(RdmaWire, BadPsnIsRejected) {
    run_fault(GetParam(), {Fault::psn, sim::Check::bad_psn, "does not match the expected PSN"});
}
TEST_P(RdmaWire, OutOfBoundsRemoteOffsetIsRejected) {
    run_fault(GetParam(), {Fault::bounds, sim::Check::out_of_bounds, "remote_offs 4194304 + len 256 exceeds the registered buffer"});
}
TEST_P(RdmaWire, UnknownQpnIsRejected) {
    run_fault(GetParam(), {Fault::unknown_qpn, sim::Check::unknown_qpn, "no queue pair with qpn 0x00003b"});
}
TEST_P(RdmaWire, TargetWithoutContextRejects) {
    run_fault(GetParam(), {Fault::no_context, sim::Check::no_context, "has no QP context"});
}

namespace {

/// One 64 B WRITE and a poll of its counter: what fails once the peer is gone.
void write_and_poll(coyote::cThread& t) {
    t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = 64});
    (void)t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
}

/// The message of `e`, once checked to be a peer_gone error.
std::string peer_gone_message(const coyote::Error& e) {
    const std::string what = e.what();
    check(e.code() == make_error_code(Errc::peer_gone), "error type is peer_gone: " + what);
    return what;
}

/// A client wired (initRDMA, connSync) to a server that dies (SIGKILL) right after: `client` runs in the client's
/// child with its cThread and the server's pid, its return value the child's exit code.
struct DyingServerRun {
    pid_t server_pid = 0;
    int server_status = 0;
    int client_status = 0;
};
DyingServerRun against_dying_server(const Wire& w, const std::function<int(coyote::cThread&, pid_t)>& client) {
    const uint16_t port = coyote_test::free_port();
    Child server([w, port] {
        child_env(w);
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_buf, port);
        t.connSync(false);
        ::raise(SIGKILL);
        return 1;
    });
    const pid_t server_pid = server.pid();
    Child c([&] {
        child_env(w);
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_buf, port, "127.0.0.1");
        t.connSync(true);
        return client(t, server_pid);
    });
    DyingServerRun r;
    r.server_pid = server_pid;
    r.server_status = server.wait();
    r.client_status = c.wait();
    return r;
}

}  // namespace

// The peer dies (SIGKILL): operations fail with peer_gone naming it; its segments are stale and reclaimed.
TEST_P(RdmaWire, DeadPeerIsReportedAndItsSegmentsReclaimed) {
    const Wire w = GetParam();
    const DyingServerRun run = against_dying_server(w, [&](coyote::cThread& t, pid_t server_pid) {
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                write_and_poll(t);
            } catch (const coyote::Error& e) {
                const std::string what = peer_gone_message(e);
                const std::string peer_ip = sim::ip_to_string(t.getQpair()->remote.ip_addr);
                check(what.find(peer_ip) != std::string::npos, "message names the peer " + peer_ip + ": " + what);
                if (std::string(w.wire) == "shm")
                    check(what.find("peer process " + std::to_string(server_pid)) != std::string::npos,
                          "message names the peer process: " + what);
                // Future operations fail the same way.
                try {
                    write_and_poll(t);
                    return 3;
                } catch (const coyote::Error& e2) {
                    check(e2.code() == make_error_code(Errc::peer_gone), std::string("again peer_gone: ") + e2.what());
                }
                return 0;
            }
            std::this_thread::sleep_for(1ms);
        }
        return 2;
    });
    EXPECT_EQ(run.server_status, 128 + SIGKILL);
    EXPECT_EQ(run.client_status, 0);
    // Stale NIC segment of the killed server: left behind, then reclaimed. Any sim process of this user that opens a
    // device reclaims the segments of dead processes, so another test running beside this one may be first.
    const std::string nic = "/dev/shm/coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(run.server_pid) +
                            ".d0v0.nic";
    struct stat st {};
    if (::stat(nic.c_str(), &st) == 0) {
        EXPECT_GE(sim::reclaim_stale_segments(), 1u);
    }
    EXPECT_NE(::stat(nic.c_str(), &st), 0) << nic << " should be reclaimed";
}

// The peer exits before this side's first post: the post names the peer process as gone on both wires (the tcp
// wire used to say only "Connection refused", with a hint about loopback addresses).
TEST_P(RdmaWire, AFirstPostToAPeerThatExitedNamesItsProcess) {
    const Wire w = GetParam();
    const DyingServerRun run = against_dying_server(w, [&](coyote::cThread& t, pid_t server_pid) {
        // Until the server is dead (a zombie counts: its listener is closed).
        for (int i = 0; i < 3000 && sim::process_alive(server_pid, 0); ++i) std::this_thread::sleep_for(1ms);
        try {
            write_and_poll(t);
        } catch (const coyote::Error& e) {
            const std::string what = peer_gone_message(e);
            check(what.find("peer process " + std::to_string(server_pid)) != std::string::npos &&
                      what.find("is gone") != std::string::npos,
                  "message names the peer process as gone: " + what);
            return 0;
        }
        return 2;
    });
    EXPECT_EQ(run.server_status, 128 + SIGKILL);
    EXPECT_EQ(run.client_status, 0);
}

// The peer dies while this side only polls for its WRITEs (nothing of its own outstanding): the poll fails with
// peer_gone naming the peer instead of spinning on a counter nothing can move any more.
TEST_P(RdmaWire, APassivePollerLearnsItsPeerExited) {
    const Wire w = GetParam();
    const DyingServerRun run = against_dying_server(w, [&](coyote::cThread& t, pid_t server_pid) {
        const auto start = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - start < 30s) {
            try {
                if (t.checkCompleted(CoyoteOper::LOCAL_WRITE) != 0) return 2;
            } catch (const coyote::Error& e) {
                const std::string what = peer_gone_message(e);
                check(what.find("peer process " + std::to_string(server_pid)) != std::string::npos,
                      "message names the peer process: " + what);
                check(what.find("LOCAL_WRITE") != std::string::npos, "message names the counter: " + what);
                check(std::chrono::steady_clock::now() - start < 10s, "reported within 10 s: " + what);
                return 0;
            }
        }
        return 3; // never told
    });
    EXPECT_EQ(run.server_status, 128 + SIGKILL);
    EXPECT_EQ(run.client_status, 0) << "(3: the poller was never told its peer exited)";
}

INSTANTIATE_TEST_SUITE_P(Wires, RdmaWire,
                         testing::Values(Wire{"shm", true}, Wire{"tcp", true}, Wire{"shm", false}, Wire{"tcp", false}),
                         wire_name);
