// RDMA WRITE / READ / SEND between two processes on COYOTE_BACKEND=hw and the fake driver (LD_PRELOAD), both
// register layouts: the hw backend's command and QP-context words drive each process's fake FPGA, whose sim NIC
// moves the data; the data and the completion counts are checked as on the sim backend.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "unit/rdma_test_support.hpp"

using namespace std::chrono_literals;
using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::Child;

namespace {

constexpr uint32_t k_buf = 1u << 20;

void child_env(bool avx) {
    ::setenv("COYOTE_BACKEND", "hw", 1);
    ::setenv("COYOTE_FAKE_HUGE_PAGES", "1", 1); // initRDMA allocates HPF memory; this machine may reserve none
    ::setenv("COYOTE_SIM_SHELL", avx ? "avx=1" : "avx=0", 1);
    ::setenv("COYOTE_OOB_CONNECT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_ACCEPT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_IO_TIMEOUT_MS", "30000", 1);
}

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error("check failed: " + what);
}

uint8_t pat(uint64_t i, unsigned seed) { return static_cast<uint8_t>((i * 131 + seed * 17 + (i >> 8)) & 0xFF); }

void fill(void* p, uint64_t n, unsigned seed) {
    auto* b = static_cast<uint8_t*>(p);
    for (uint64_t i = 0; i < n; ++i) b[i] = pat(i, seed);
}

/// First offset in [from, to) where `p` differs from pattern `seed` (at pattern index i + shift), or -1.
int64_t mismatch(const void* p, uint64_t from, uint64_t to, unsigned seed, int64_t shift = 0) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (uint64_t i = from; i < to; ++i)
        if (b[i] != pat(static_cast<uint64_t>(static_cast<int64_t>(i) + shift), seed)) return static_cast<int64_t>(i);
    return -1;
}

void wait_count(coyote::cThread& t, CoyoteOper op, uint32_t n, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    uint32_t got = 0;
    while ((got = t.checkCompleted(op)) < n) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("timed out waiting for " + what + ": " + std::to_string(got) + " of " +
                                     std::to_string(n));
        std::this_thread::sleep_for(100us);
    }
    check(got == n, what + ": counted " + std::to_string(got) + ", expected exactly " + std::to_string(n));
}

class HwRdma : public testing::TestWithParam<bool> {};

std::string layout_name(const testing::TestParamInfo<bool>& i) { return i.param ? "avx" : "legacy"; }

}  // namespace

// The client WRITEs, the server writes back, the client READs and SENDs; every byte is checked.
TEST_P(HwRdma, WriteReadSendBetweenTwoProcesses) {
    const bool avx = GetParam();
    const uint16_t port = coyote_test::free_port();
    constexpr uint32_t n = 8, chunk = 4096;
    Child server([&] {
        child_env(avx);
        coyote::cThread t(0, ::getpid());
        check(std::string(t.backendName()) == "hw", "the hw backend runs");
        auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port));
        fill(buf, k_buf, 1);
        t.connSync(false); // (1) buffers ready
        wait_count(t, CoyoteOper::LOCAL_WRITE, n, "server LOCAL_WRITE after the client's WRITEs");
        check(mismatch(buf, 0, n * chunk, 2) < 0, "the client's WRITEs arrived");
        check(mismatch(buf, n * chunk, k_buf, 1) < 0, "bytes outside the written range untouched");
        t.clearCompleted();
        for (uint32_t i = 0; i < n; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                     rdmaSg{.local_offs = i * chunk, .remote_offs = k_buf / 2 + i * chunk, .len = chunk});
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n, "server REMOTE_RDMA_WRITE");
        t.connSync(false); // (2)
        t.connSync(false); // (3) the client READ and SENT
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "server LOCAL_WRITE after the SEND");
        check(mismatch(buf, 3 * k_buf / 4, 3 * k_buf / 4 + chunk, 3, -static_cast<int64_t>(3 * k_buf / 4)) < 0,
              "SEND delivered at remote_offs");
        t.connSync(false); // (4)
        return 0;
    });
    Child client([&] {
        child_env(avx);
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port, "127.0.0.1"));
        fill(buf, k_buf, 2);
        t.connSync(true); // (1)
        for (uint32_t i = 0; i < n; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = i * chunk, .remote_offs = i * chunk, .len = chunk});
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n, "client REMOTE_RDMA_WRITE");
        wait_count(t, CoyoteOper::LOCAL_WRITE, n, "client LOCAL_WRITE after the server's write-back");
        check(mismatch(buf, k_buf / 2, k_buf / 2 + n * chunk, 2, -static_cast<int64_t>(k_buf / 2)) < 0,
              "write-back data");
        t.connSync(true); // (2)
        t.clearCompleted();
        // READ the server's [n*chunk, n*chunk + 4*chunk) (still pattern 1) into local [0, 4*chunk).
        for (uint32_t i = 0; i < 4; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_READ,
                     rdmaSg{.local_offs = i * chunk, .remote_offs = n * chunk + i * chunk, .len = chunk}, i == 3);
        wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "client REMOTE_RDMA_READ");
        check(mismatch(buf, 0, 4 * chunk, 1, static_cast<int64_t>(n * chunk)) < 0, "READ data");
        fill(buf + 4 * chunk, chunk, 3);
        t.clearCompleted();
        t.invoke(CoyoteOper::REMOTE_RDMA_SEND, rdmaSg{.local_offs = 4 * chunk, .remote_offs = 3 * k_buf / 4, .len = chunk});
        wait_count(t, CoyoteOper::REMOTE_RDMA_SEND, 1, "client SEND completion");
        t.connSync(true); // (3)
        t.connSync(true); // (4)
        return 0;
    });
    EXPECT_EQ(server.wait(), 0);
    EXPECT_EQ(client.wait(), 0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, HwRdma, testing::Values(true, false), layout_name);
