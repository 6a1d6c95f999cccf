// Network faults between two sim vFPGAs in two network namespaces (two "hosts" joined by a veth pair) on the TCP
// wire: a link that goes down for good fails an outstanding WRITE or READ within COYOTE_SIM_WIRE_TIMEOUT_MS (the
// kernel would otherwise retransmit for about 15 minutes while the initiator polled), a short flap and a stopped
// peer process do not fail anything, a lost SYN is sent again within a quarter second; a side that only polls for
// a peer on another boot (a host whose processes it cannot look at) learns from the lost connection that its peer
// was killed or cut off. Needs root, iproute2 and nftables; skipped without namespaces.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <thread>

#include "support/netns_pair.hpp"
#include "unit/rdma_test_support.hpp"

using namespace std::chrono_literals;
using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Child;
using coyote_test::NetnsPair;

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t k_port = 18490;  // each namespace has its own port space
constexpr uint32_t k_size = 1u << 16, k_len = 4096;
/// Moves this forked child into namespace `name` on the TCP wire bound to `addr`, with a wire timeout of
/// `timeout_ms` (2 s unless a test needs slack for the kernel's one-second ARP and SYN retry timers).
void enter_side(const std::string& name, const std::string& addr, int timeout_ms = 2000) {
    NetnsPair::enter(name);
    coyote_test::child_env("tcp");
    ::setenv("COYOTE_SIM_WIRE_ADDR", addr.c_str(), 1);
    ::setenv("COYOTE_SIM_WIRE_TIMEOUT_MS", std::to_string(timeout_ms).c_str(), 1);
}

void run(const std::string& cmd) { check(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0, "'" + cmd + "'"); }

/// Polls `op` until it counts `n` (true), or until the poll throws (the error is kept in `err`), or 30 s.
bool poll_until(coyote::cThread& t, CoyoteOper op, uint32_t n, std::string& err, coyote::Errc& code) {
    const auto deadline = Clock::now() + 30s;
    try {
        while (t.checkCompleted(op) < n) {
            check(Clock::now() < deadline, "no completion and no error within 30 s");
            std::this_thread::sleep_for(100us);
        }
        return true;
    } catch (const coyote::Error& e) {
        err = e.what();
        code = static_cast<coyote::Errc>(e.code().value());
        return false;
    }
}

/// The server side: fills its buffer, syncs, and stays until the parent ends it (or, with `verify`, syncs again and
/// checks the client's WRITE when there was one).
Child serve(const NetnsPair& ns, bool verify, CoyoteOper op, int timeout_ms = 2000) {
    return Child([&ns, verify, op, timeout_ms] {
        enter_side(ns.a(), ns.ip_a(), timeout_ms);
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(k_size, k_port));
        for (uint32_t i = 0; i < k_size; ++i) buf[i] = static_cast<uint8_t>(i * 3);
        t.connSync(false);
        if (!verify) {
            std::this_thread::sleep_for(90s);
            return 0;
        }
        t.connSync(false);
        for (uint32_t i = 0; i < k_len && op == CoyoteOper::REMOTE_RDMA_WRITE; ++i)
            check(buf[k_size / 2 + i] == static_cast<uint8_t>(i * 5 + 1), "WRITE data at " + std::to_string(i));
        return 0;
    }, 100);
}

uint8_t* connect_client(coyote::cThread& t, const NetnsPair& ns) {
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_size, k_port, ns.ip_a().c_str()));
    for (uint32_t i = 0; i < k_size; ++i) buf[i] = static_cast<uint8_t>(i * 5 + 1);
    t.connSync(true);
    return buf;
}

void post(coyote::cThread& t, CoyoteOper op) {
    if (op == CoyoteOper::REMOTE_RDMA_READ)
        t.invoke(op, rdmaSg{.local_offs = k_size / 2, .remote_offs = 0, .len = k_len});
    else
        t.invoke(op, rdmaSg{.local_offs = 0, .remote_offs = k_size / 2, .len = k_len});
}

/// Posts `op` (the first post dials the peer and may wait for it) while another thread runs `undo` after `after`:
/// the fault set up before the post ends while the post waits.
void post_while(coyote::cThread& t, CoyoteOper op, std::chrono::milliseconds after, const std::string& undo) {
    std::exception_ptr failed;
    std::thread undoer([&] {
        std::this_thread::sleep_for(after);
        try {
            run(undo);
        } catch (...) {
            failed = std::current_exception();
        }
    });
    try {
        post(t, op);
    } catch (...) {
        undoer.join();
        throw;
    }
    undoer.join();
    if (failed) std::rethrow_exception(failed);
}

/// Makes this forked child look like a process of another boot (another host) to its peers: a private mount
/// namespace with a file of another boot id bound over /proc/sys/kernel/random/boot_id.
void pretend_another_boot() {
    check(::unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)");
    check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "mount --make-rprivate /");
    const std::string file = "/tmp/coyote-test-boot-id." + std::to_string(::getpid());
    std::ofstream(file) << "0badb007-0000-4000-8000-" << std::string(12, '1') << "\n";
    const int rc = ::mount(file.c_str(), "/proc/sys/kernel/random/boot_id", nullptr, MS_BIND, nullptr);
    ::unlink(file.c_str()); // the mount keeps it
    check(rc == 0, "bind mount over /proc/sys/kernel/random/boot_id");
}

class TcpWireNetnsFaults : public testing::TestWithParam<CoyoteOper> {};

}  // namespace

TEST_P(TcpWireNetnsFaults, ALinkDownForGoodFailsTheOutstandingRequestAtTheWireTimeout) {
    NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    const CoyoteOper op = GetParam();
    Child server = serve(ns, false, op);
    Child client([&] {
        enter_side(ns.b(), ns.ip_b());
        coyote::cThread t(0, ::getpid());
        connect_client(t, ns);
        std::string err;
        coyote::Errc code{};
        post(t, op);  // the connection is up and answers
        check(poll_until(t, op, 1, err, code), "the first request completes: " + err);
        run("ip link set " + ns.veth_b() + " down");
        const auto down = Clock::now();
        post(t, op);
        check(!poll_until(t, op, 2, err, code), "a request over a dead link completed");
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - down).count();
        check(code == coyote::Errc::peer_gone, "peer_gone expected: " + err);
        check(err.find("COYOTE_SIM_WIRE_TIMEOUT_MS") != std::string::npos &&
                  err.find(ns.ip_a()) != std::string::npos,
              "the error names the setting and the peer's wire address: " + err);
        check(took >= 1500 && took < 12000, "failed after " + std::to_string(took) + " ms (wire timeout 2000 ms)");
        return 0;
    }, 90);
    EXPECT_EQ(client.wait(100s), 0);
}

TEST_P(TcpWireNetnsFaults, AShortFlapAndAStoppedPeerFailNothing) {
    NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    const CoyoteOper op = GetParam();
    Child server = serve(ns, true, op, 3000);
    const pid_t server_pid = server.pid();
    Child client([&] {
        enter_side(ns.b(), ns.ip_b(), 3000);
        coyote::cThread t(0, ::getpid());
        const uint8_t* buf = connect_client(t, ns);
        std::string err;
        coyote::Errc code{};
        // A flap of a third of the wire timeout with the first request (which opens the connection) posted while
        // the link is down: the post waits for the link (it dials the peer). The slack covers one ARP request
        // or SYN the kernel retries only after a second (lost while the link came back).
        run("ip link set " + ns.veth_b() + " down");
        post_while(t, op, 1s, "ip link set " + ns.veth_b() + " up");
        check(poll_until(t, op, 1, err, code), "a request across a 1 s flap failed: " + err);
        // The peer process stopped for longer than the wire timeout: its kernel still acknowledges.
        check(::kill(server_pid, SIGSTOP) == 0, "SIGSTOP the server");
        post(t, op);
        std::this_thread::sleep_for(4s);
        check(::kill(server_pid, SIGCONT) == 0, "SIGCONT the server");
        check(poll_until(t, op, 2, err, code), "a request to a peer stopped for 4 s failed: " + err);
        for (uint32_t i = 0; i < k_len && op == CoyoteOper::REMOTE_RDMA_READ; ++i)
            check(buf[k_size / 2 + i] == static_cast<uint8_t>(i * 3), "READ data at " + std::to_string(i));
        t.connSync(true);
        return 0;
    }, 90);
    EXPECT_EQ(client.wait(100s), 0);
    EXPECT_EQ(server.wait(100s), 0);
}

TEST_P(TcpWireNetnsFaults, ALostSynCostsOneConnectAttemptNotTheKernelsBackoff) {
    // The kernel resends a lost SYN after 1 s and then 3 s (before Linux 6.5, and with
    // net.ipv4.tcp_syn_linear_timeouts=0 after); the wire dials afresh every quarter second instead, so a
    // connection whose SYNs the peer's host drops for 1.2 s opens well within a 2.5 s wire timeout (the kernel
    // alone would open it at 3 s, too late).
    NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    const CoyoteOper op = GetParam();
    Child server = serve(ns, true, op, 2500);
    Child client([&] {
        enter_side(ns.b(), ns.ip_b(), 2500);
        if (std::ofstream linear{"/proc/sys/net/ipv4/tcp_syn_linear_timeouts"}) linear << "0\n";  // this namespace
        coyote::cThread t(0, ::getpid());
        connect_client(t, ns);  // the out-of-band connection is open before SYNs are dropped
        const std::string in_a = "ip netns exec " + ns.a() + " ";
        run(in_a + "nft add table inet coyote_syn");
        run(in_a + "nft add chain inet coyote_syn in '{ type filter hook input priority 0; }'");
        run(in_a + "nft add rule inet coyote_syn in tcp flags '&' '(syn|ack)' == syn drop");
        const auto start = Clock::now();
        post_while(t, op, 1200ms, in_a + "nft delete table inet coyote_syn");  // the post opens the connection
        std::string err;
        coyote::Errc code{};
        check(poll_until(t, op, 1, err, code), "a request whose SYNs were dropped for 1.2 s failed: " + err);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        check(took >= 1200, "completed after " + std::to_string(took) + " ms although SYNs were dropped for 1.2 s");
        t.connSync(true);
        return 0;
    }, 90);
    EXPECT_EQ(client.wait(100s), 0);
    EXPECT_EQ(server.wait(100s), 0);
}

/// A server on another boot that only polls LOCAL_WRITE: its client WRITEs once, then dies (`kill_self`) or takes
/// its link down for good; the server's poll fails naming the lost connection within the wire timeout.
void passive_side_learns(bool kill_self) {
    NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    Child server([&] {
        enter_side(ns.a(), ns.ip_a());
        pretend_another_boot();
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_size, k_port);
        t.connSync(false);
        std::string err;
        coyote::Errc code{};
        check(poll_until(t, CoyoteOper::LOCAL_WRITE, 1, err, code), "the first WRITE arrives: " + err);
        const auto start = Clock::now();
        check(!poll_until(t, CoyoteOper::LOCAL_WRITE, 2, err, code), "a second WRITE arrived");
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        check(code == coyote::Errc::peer_gone && err.find("is unreachable: connection to") != std::string::npos,
              "peer_gone naming the lost connection expected: " + err);
        check(took < 12000, "learnt after " + std::to_string(took) + " ms");
        return 0;
    }, 90);
    Child client([&] {
        enter_side(ns.b(), ns.ip_b());
        coyote::cThread t(0, ::getpid());
        connect_client(t, ns);
        std::string err;
        coyote::Errc code{};
        post(t, CoyoteOper::REMOTE_RDMA_WRITE);
        check(poll_until(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, err, code), "the WRITE completes: " + err);
        if (kill_self) ::raise(SIGKILL);
        run("ip link set " + ns.veth_b() + " down");
        std::this_thread::sleep_for(60s);
        return 0;
    }, 90);
    EXPECT_EQ(server.wait(100s), 0);
}

TEST(TcpWireNetnsPassive, APollerOnAnotherBootLearnsItsPeerWasKilled) { passive_side_learns(true); }

TEST(TcpWireNetnsPassive, APollerOnAnotherBootLearnsItsPeersLinkWentDown) { passive_side_learns(false); }

INSTANTIATE_TEST_SUITE_P(Ops, TcpWireNetnsFaults,
                         testing::Values(CoyoteOper::REMOTE_RDMA_WRITE, CoyoteOper::REMOTE_RDMA_READ),
                         [](const testing::TestParamInfo<CoyoteOper>& p) {
                             return p.param == CoyoteOper::REMOTE_RDMA_READ ? std::string("read")
                                                                               : std::string("write");
                         });
