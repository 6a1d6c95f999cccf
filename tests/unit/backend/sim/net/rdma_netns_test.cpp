// RDMA between two sim vFPGAs in two network namespaces joined by a veth pair: a different netns counts
// as a different host, so the automatic wire picks TCP. Needs root and iproute2; skipped otherwise.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
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

void wait_count(coyote::cThread& t, CoyoteOper op, uint32_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (t.checkCompleted(op) < n) {
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("timed out waiting for completions");
        std::this_thread::sleep_for(100us);
    }
}

/// Moves this forked child into namespace `name`, on the sim backend with `wire` bound to `addr`.
void enter_side(const std::string& name, const std::string& addr, const std::string& wire) {
    NetnsPair::enter(name);
    ::setenv("COYOTE_BACKEND", "sim", 1);
    ::setenv("COYOTE_SIM_WIRE", wire.c_str(), 1);
    ::setenv("COYOTE_SIM_WIRE_ADDR", addr.c_str(), 1);
}

class RdmaNetns : public testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(RdmaNetns, WriteAndReadAcrossNamespacesUseTheTcpWire) {
    NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    const std::string wire = GetParam();
    const uint16_t port = 18488;  // each namespace has its own port space
    constexpr uint32_t size = 1u << 20, n = 16, chunk = 8192;
    Child server([&] {
        enter_side(ns.a(), ns.ip_a(), wire);
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(size, port));
        for (uint32_t i = 0; i < size; ++i) buf[i] = static_cast<uint8_t>(i * 3);
        t.connSync(false);
        wait_count(t, CoyoteOper::LOCAL_WRITE, n);
        check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == n, "exactly n WRITEs arrived");
        for (uint32_t i = 0; i < n * chunk; ++i)
            check(buf[size / 2 + i] == static_cast<uint8_t>(i * 5 + 1), "WRITE data at " + std::to_string(i));
        t.connSync(false);
        t.connSync(false);
        return 0;
    }, 90);
    Child client([&] {
        enter_side(ns.b(), ns.ip_b(), wire);
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(size, port, ns.ip_a().c_str()));
        for (uint32_t i = 0; i < size; ++i) buf[i] = static_cast<uint8_t>(i * 5 + 1);
        t.connSync(true);
        for (uint32_t i = 0; i < n; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                     rdmaSg{.local_offs = i * chunk, .remote_offs = size / 2 + i * chunk, .len = chunk});
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n);
        t.connSync(true);
        // READ the server's untouched first half back.
        t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = 65536});
        wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1);
        for (uint32_t i = 0; i < 65536; ++i)
            check(buf[i] == static_cast<uint8_t>(i * 3), "READ data at " + std::to_string(i));
        testing::internal::CaptureStdout();
        t.printDebug();
        const std::string dbg = testing::internal::GetCapturedStdout();
        check(dbg.find("(tcp wire)") != std::string::npos, "the peer in another netns is reached over TCP:\n" + dbg);
        t.connSync(true);
        return 0;
    }, 90);
    EXPECT_EQ(server.wait(), 0);
    EXPECT_EQ(client.wait(), 0);
}

INSTANTIATE_TEST_SUITE_P(Wires, RdmaNetns, testing::Values("auto", "tcp"));
