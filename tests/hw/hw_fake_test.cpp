// End to end on the fake driver: cThread with COYOTE_BACKEND=hw drives the fake Coyote driver (LD_PRELOAD), which
// runs the sim vFPGA behind the driver's ABI. The user logic is the test plug-in model (sim_model_plugin.cpp):
// data XOR CSR 0, CSR 1 raises an interrupt for the ctid in CSR 2, CSR 3 = v makes CSR 4 = 2v.
// Proven here against the fake driver only, never against hardware.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <numeric>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/device.hpp"
#include "backend/hw/driver_abi.hpp"
#include "backend/hw/gpu/gpu_memory.hpp"
#include "backend/hw/hw_device.hpp"
#include "backend/hw/reconfig_device.hpp"
#include "support/child.hpp"
#include "unit/test_support.hpp"

using namespace coyote;
using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::eventually;
using coyote_test::wait_completed;
namespace hwabi = coyote::detail::hw::abi;

namespace {

/// Shell layouts the data-path tests run under: (avx, wb).
class HwFakeLayout : public ::testing::TestWithParam<std::pair<int, int>> {
protected:
    void SetUp() override {
        const auto [avx, wb] = GetParam();
        shell_ = "avx=" + std::to_string(avx) + ",wb=" + std::to_string(wb);
        env_ = std::make_unique<EnvGuard>("COYOTE_SIM_SHELL", shell_.c_str());
    }
    std::string shell_;
    std::unique_ptr<EnvGuard> env_;
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

TEST_P(HwFakeLayout, LocalTransferMovesTheData) {
    cThread t(0, getpid());
    ASSERT_EQ(t.backendName(), "hw");
    EXPECT_EQ(t.getShellConfig().en_avx, GetParam().first == 1);
    EXPECT_EQ(t.getShellConfig().en_wb, GetParam().second == 1);
    constexpr uint32_t n = 64 * 1024;
    auto* src = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    auto* dst = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::THP, n}));
    const auto data = pattern(n, 3);
    std::memcpy(src, data.data(), n);
    std::memset(dst, 0, n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = n}, localSg{.addr = dst, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(dst, data.data(), n), 0);
    EXPECT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
}

TEST_P(HwFakeLayout, ManyCommandsPassTheCreditCheck) {
    cThread t(0, getpid());
    constexpr uint32_t n = 4096, count = 200;
    auto* src = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n * count}));
    auto* dst = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n * count}));
    const auto data = pattern(n * count, 11);
    std::memcpy(src, data.data(), data.size());
    for (uint32_t i = 0; i < count; ++i)
        t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src + i * n, .len = n},
                 localSg{.addr = dst + i * n, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, count));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), count);
    EXPECT_EQ(std::memcmp(dst, data.data(), data.size()), 0);
    t.clearCompleted();
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0U);
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 0U);
}

TEST_P(HwFakeLayout, ReadThenWriteAndLastFlag) {
    cThread t(0, getpid());
    constexpr uint32_t n = 8192;
    auto* src = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    auto* dst = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    const auto data = pattern(n, 5);
    std::memcpy(src, data.data(), n);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = n / 2}, false); // no completion counted
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src + n / 2, .len = n / 2}, true);
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = dst, .len = n}, true);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 1U);
    EXPECT_EQ(std::memcmp(dst, data.data(), n), 0);
}

/// The words last stored at register `reg` of the configuration region (AVX: 256-bit registers).
std::vector<uint64_t> stored(bool avx, uint32_t reg) {
    using Fn = int (*)(unsigned long, unsigned long, uint64_t*);
    static const auto fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "coyote_fake_last_store"));
    uint64_t w[4] = {0, 0, 0, 0};
    if (fn == nullptr || fn(avx ? 2 : 1, avx ? 32UL * reg : 8UL * reg, w) != 0) return {};
    return avx ? std::vector<uint64_t>(w, w + 4) : std::vector<uint64_t>{w[0]};
}

TEST_P(HwFakeLayout, QpContextAndArpWords) {
    // Hand-computed from sw/src/cThread.cpp writeQpContext / doArpLookup: peer qpn 0xC7, psn 0xABCDEF, rkey 0,
    // vaddr 0x7f1234567000, IP 10.1.2.3 (gid words 0x0302010A), port 0x4838.
    const bool avx = GetParam().first == 1;
    cThread t(0, getpid());
    ASSERT_NE(t.getQpair(), nullptr);
    coyote::ibvQ peer;
    std::memset(static_cast<void*>(&peer), 0, sizeof(peer));
    peer.ip_addr = 0x0A010203;
    peer.qpn = 0xC7;
    peer.psn = 0xABCDEF;
    peer.vaddr = reinterpret_cast<void*>(0x7f1234567000ULL);
    peer.size = 4096;
    std::memcpy(peer.gid, "0a0102030a0102030a0102030a010203", 33);
    std::vector<std::byte> blob(sizeof(peer));
    std::memcpy(blob.data(), &peer, sizeof(peer));
    t.connectQp(blob, 0x4838);
    const uint64_t lqpn = t.getQpair()->local.qpn, lpsn = t.getQpair()->local.psn;
    const std::vector<uint64_t> ctx = {lqpn, lpsn | (0xABCDEFULL << 24), 0x7f1234567000ULL};
    const std::vector<uint64_t> conn = {(lqpn & 0xFFFF) | (0xC7ULL << 16) | (0x4838ULL << 40), 0x0302010A0302010AULL,
                                        0x0302010A0302010AULL};
    if (avx) {
        EXPECT_EQ(stored(true, 10), (std::vector<uint64_t>{ctx[0], ctx[1], ctx[2], 0}));
        EXPECT_EQ(stored(true, 11), (std::vector<uint64_t>{conn[0], conn[1], conn[2], 0}));
        EXPECT_EQ(stored(true, 9), (std::vector<uint64_t>{0x0A010203, 0, 0, 0}));
    } else {
        for (uint32_t i = 0; i < 3; ++i) {
            EXPECT_EQ(stored(false, 40 + i), (std::vector<uint64_t>{ctx[i]})) << i;
            EXPECT_EQ(stored(false, 44 + i), (std::vector<uint64_t>{conn[i]})) << i;
        }
        EXPECT_EQ(stored(false, 36), (std::vector<uint64_t>{0x0A010203}));
    }
}

INSTANTIATE_TEST_SUITE_P(Layouts, HwFakeLayout,
                         ::testing::Values(std::pair{1, 1}, std::pair{0, 1}, std::pair{1, 0}, std::pair{0, 0}),
                         [](const auto& p) {
                             return std::string(p.param.first ? "avx" : "legacy") +
                                    (p.param.second ? "_writeback" : "_status_registers");
                         });

TEST(HwFake, DeviceFilesSelectTheHwBackend) {
    EnvGuard unset("COYOTE_BACKEND", nullptr);
    EXPECT_EQ(coyote::detail::selected_backend(0, 0), "hw"); // the fake's device file "exists"
    EXPECT_EQ(coyote::detail::selected_backend(0, 3), "sim"); // vFPGA 3 does not
    EXPECT_EQ(coyote::detail::selected_backend(5, 0), "sim"); // nor device 5
    cThread t(0, getpid());
    EXPECT_EQ(t.backendName(), "hw");
}

// A child forked while its parent has the device open (the fake's poller running) opens the same vFPGA: the
// driver's files are its own, its transfer completes and its user interrupt arrives, and the parent's device still
// works.
TEST(HwFake, ForkedChildOpensTheParentsVfpga) {
    if (coyote_test::k_thread_sanitizer) GTEST_SKIP() << coyote_test::k_fork_threads_under_tsan;
    cThread parent(0, getpid());
    ASSERT_TRUE(coyote_test::first_transfer_passes_through(parent, 64 * 1024, 1));
    for (int round = 0; round < 5; ++round) {
        coyote_test::BusyTransfers busy(parent, 64 * 1024); // the fork lands while the parent's device works
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        coyote_test::Child child([] {
            coyote_test::InterruptLog log;
            cThread t(0, getpid(), 0, log.callback());
            if (t.backendName() != "hw" || !coyote_test::first_transfer_passes_through(t, 64 * 1024, 2)) return 1;
            t.setCSR(static_cast<uint64_t>(t.getCtid()), 2); // the plug-in's interrupt, through the fake's threads
            t.setCSR(42, 1);
            return log.wait_for(1) && log.values() == std::vector<int>{42} ? 0 : 2;
        }, 60);
        EXPECT_EQ(child.wait(std::chrono::seconds(60)), 0)
            << "round " << round << ": the child's transfer failed or hung (-1: killed at the deadline)";
        EXPECT_GT(busy.done(), 0u) << "the parent's transfers stopped";
    }
    cThread again(0, getpid());
    EXPECT_TRUE(coyote_test::first_transfer_passes_through(again, 4096, 3));
}

TEST(HwFake, SetAndGetIpAndMac) {
    auto dev = coyote::detail::open_device(0, 0);
    auto* hw = dynamic_cast<coyote::detail::hw::HwDevice*>(dev.get());
    ASSERT_NE(hw, nullptr);
    hw->set_ip_address(0x0A0B0C0D);
    hw->set_mac_address(0x0000AABBCCDDEEFFULL);
    EXPECT_EQ(hw->ip_address(), 0x0A0B0C0DU);
    EXPECT_EQ(hw->mac_address(), 0x0000AABBCCDDEEFFULL);
    hwabi::Args a{};
    const int fd = ::open("/dev/coyote_fpga_0_v0", O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ioctl(fd, hwabi::k_get_ip_address, a.data()), 0);
    EXPECT_EQ(a[0], 0x0A0B0C0DU); // the driver's value changed, as another process would see it
    ::close(fd);
    cThread t(0, getpid());
    ASSERT_NE(t.getQpair(), nullptr);
    EXPECT_EQ(t.getQpair()->local.ip_addr, 0x0A0B0C0DU);
}

TEST(HwFake, CsrsReachTheUserLogic) {
    cThread t(0, getpid());
    t.setCSR(21, 3);
    EXPECT_TRUE(eventually([&] { return t.getCSR(4) == 42; })) << t.getCSR(4);
    EXPECT_EQ(t.getCSR(3), 21U);
}

TEST(HwFake, XorKeyCsrChangesTheData) {
    cThread t(0, getpid());
    t.setCSR(0x5A, 0);
    constexpr uint32_t n = 4096;
    auto* src = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    auto* dst = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    std::memset(src, 0x0F, n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = n}, localSg{.addr = dst, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(dst[0], 0x0F ^ 0x5A);
    EXPECT_EQ(dst[n - 1], 0x0F ^ 0x5A);
    t.setCSR(0, 0);
}

TEST(HwFake, UserInterruptsReachTheCallback) {
    coyote_test::InterruptLog log;
    cThread t(0, getpid(), 0, log.callback());
    t.setCSR(static_cast<uint64_t>(t.getCtid()), 2);
    for (int v : {42, 43, 44}) t.setCSR(static_cast<uint64_t>(v), 1);
    ASSERT_TRUE(log.wait_for(3)) << log.values().size();
    EXPECT_EQ(log.values(), (std::vector<int>{42, 43, 44}));
}

// A handler that does not return within COYOTE_HANDLER_WAIT_MS no longer hangs the cThread's destructor (the
// interrupt thread was joined forever); the thread runs on detached, touching nothing of the closed device, and
// ends once the handler returns. The next cThread gets its interrupts.
TEST(HwFake, AHandlerThatDoesNotReturnDoesNotHangTheClose) {
    coyote_test::EnvGuard w("COYOTE_HANDLER_WAIT_MS", "300");
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto entered = std::make_shared<std::atomic<bool>>(false);
    auto left = std::make_shared<std::atomic<bool>>(false);
    const auto t0 = std::chrono::steady_clock::now();
    {
        cThread t(0, getpid(), 0, [release, entered, left](int) {
            *entered = true;
            while (!*release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            *left = true;
        });
        t.setCSR(static_cast<uint64_t>(t.getCtid()), 2);
        t.setCSR(7, 1);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!*entered && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        ASSERT_TRUE(entered->load());
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    EXPECT_FALSE(left->load());
    *release = true;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!*left && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(left->load());
    coyote_test::InterruptLog log;
    cThread again(0, getpid(), 0, log.callback());
    again.setCSR(static_cast<uint64_t>(again.getCtid()), 2);
    again.setCSR(9, 1);
    ASSERT_TRUE(log.wait_for(1));
    EXPECT_EQ(log.values(), (std::vector<int>{9}));
}

// Fields the command words cannot carry are refused before posting (stream 5 ran as host, dest 16 as dest 0), and
// what the driver or the FPGA would drop without a completion too (a length past MAX_TRANSFER_SIZE, a null address).
TEST(HwFake, LocalCommandsTheWordsCannotCarryAreRefused) {
    cThread t(0, getpid());
    auto* a = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, 4096}));
    auto said = [&](localSg sg) {
        try {
            t.invoke(CoyoteOper::LOCAL_READ, sg);
        } catch (const coyote::Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(said(localSg{.addr = a, .len = 4096, .stream = 5}).find("stream 5 is not a local stream"),
              std::string::npos);
    EXPECT_NE(said(localSg{.addr = a, .len = 4096, .dest = 16}).find("dest 16 is out of range"), std::string::npos);
    EXPECT_NE(said(localSg{.addr = a, .len = MAX_TRANSFER_SIZE + 1}).find("exceeds MAX_TRANSFER_SIZE"),
              std::string::npos);
    EXPECT_NE(said(localSg{.addr = nullptr, .len = 64}).find("null address"), std::string::npos);
    EXPECT_EQ(said(localSg{.addr = a, .len = 4096}), "accepted");
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
}

// Back-pressure without data flowing: writes that wait for input fill the queue; the host's credit check then
// stops posting and COYOTE_POST_TIMEOUT_MS ends the wait with an error (the fake stalled each store beyond what
// its sim held for 30 s and then dropped the command, which the host took as posted).
TEST(HwFake, AFullQueueEndsInThePostTimeout) {
    coyote_test::EnvGuard pt("COYOTE_POST_TIMEOUT_MS", "1000");
    {
        cThread t(0, getpid());
        auto* a = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, 4096}));
        const auto t0 = std::chrono::steady_clock::now();
        int posted = 0;
        std::string said;
        try {
            for (; posted < 200; ++posted) t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = a, .len = 64});
        } catch (const coyote::Error& e) {
            said = e.what();
        }
        const auto took = std::chrono::steady_clock::now() - t0;
        EXPECT_NE(said.find("COYOTE_POST_TIMEOUT_MS"), std::string::npos) << said;
        EXPECT_GE(posted, CMD_FIFO_DEPTH - CMD_FIFO_THR) << said;
        EXPECT_LT(took, std::chrono::seconds(10)) << posted;
    }
    // The closed cThread's queued commands went with it: the next cThread on its slot gets none of them.
    cThread u(0, getpid());
    constexpr uint32_t n = 4096;
    auto* src = static_cast<uint8_t*>(u.getMem({CoyoteAllocType::REG, n}));
    auto* dst = static_cast<uint8_t*>(u.getMem({CoyoteAllocType::REG, n}));
    for (uint32_t i = 0; i < n; ++i) src[i] = static_cast<uint8_t>(i * 7);
    u.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = n}, localSg{.addr = dst, .len = n});
    ASSERT_TRUE(wait_completed(u, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(src, dst, n), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(u.checkCompleted(CoyoteOper::LOCAL_WRITE), 1U);
}

// Each cThread's interrupts have a thread of their own (as stock Coyote's): a slow handler holds up its own
// ctid only (with one thread per vFPGA another cThread's interrupt waited the whole handler out).
TEST(HwFake, ASlowHandlerDoesNotHoldUpAnotherCThreadsInterrupts) {
    std::atomic<bool> slow_entered{false};
    std::atomic<int64_t> fast_at_ns{0};
    const auto t0 = std::chrono::steady_clock::now();
    cThread slow(0, getpid(), 0, [&](int) {
        slow_entered = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    });
    cThread fast(0, getpid(), 0, [&](int) {
        fast_at_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    });
    slow.setCSR(static_cast<uint64_t>(slow.getCtid()), 2);
    slow.setCSR(1, 1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!slow_entered && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    ASSERT_TRUE(slow_entered.load());
    const auto sent = std::chrono::steady_clock::now() - t0;
    fast.setCSR(static_cast<uint64_t>(fast.getCtid()), 2);
    fast.setCSR(2, 1);
    while (fast_at_ns == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    ASSERT_NE(fast_at_ns.load(), 0);
    EXPECT_LT(std::chrono::nanoseconds(fast_at_ns.load()) - sent, std::chrono::milliseconds(1000));
}

// Closing a cThread waits for its handler when it is running (another cThread keeping the vFPGA open): it returned
// at once, and the handler then used what its owner had destroyed.
TEST(HwFake, ClosingACThreadWaitsForItsRunningHandler) {
    cThread keeper(0, getpid());
    std::atomic<bool> entered{false}, left{false};
    {
        cThread t(0, getpid(), 0, [&](int) {
            entered = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            left = true;
        });
        t.setCSR(static_cast<uint64_t>(t.getCtid()), 2);
        t.setCSR(5, 1);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!entered && std::chrono::steady_clock::now() < until) std::this_thread::yield();
        ASSERT_TRUE(entered.load());
    }
    EXPECT_TRUE(left.load()) << "the cThread closed while its handler still ran";
}

// A cThread destroyed from inside its own interrupt handler: the thread cannot join itself (std::terminate); it
// is let go and leaves once the handler returns.
TEST(HwFake, ACThreadDestroyedFromItsOwnHandler) {
    std::unique_ptr<cThread> t;
    std::atomic<bool> go{false}, done{false};
    t = std::make_unique<cThread>(0, getpid(), 0, [&](int) {
        while (!go) std::this_thread::yield(); // the main thread is out of its last call on `t`
        t.reset();
        done = true;
    });
    t->setCSR(static_cast<uint64_t>(t->getCtid()), 2);
    t->setCSR(3, 1);
    go = true;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(done.load());
    cThread again(0, getpid());
    EXPECT_EQ(again.checkCompleted(CoyoteOper::LOCAL_WRITE), 0U);
}

TEST(HwFake, TeardownWithCommandsInFlightAndInterruptsPending) {
    for (int round = 0; round < 3; ++round) {
        std::atomic<int> calls{0};
        auto t = std::make_unique<cThread>(0, getpid(), 0, [&](int) { calls.fetch_add(1); });
        constexpr uint32_t n = 64 * 1024;
        auto* src = static_cast<uint8_t*>(t->getMem({CoyoteAllocType::REG, n}));
        auto* dst = static_cast<uint8_t*>(t->getMem({CoyoteAllocType::REG, n}));
        for (int i = 0; i < 20; ++i)
            t->invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = n}, localSg{.addr = dst, .len = n});
        t->setCSR(static_cast<uint64_t>(t->getCtid()), 2);
        for (int v = 0; v < 5; ++v) t->setCSR(static_cast<uint64_t>(v), 1);
        t.reset(); // frees the buffers, stops the interrupt thread, unregisters: must neither hang nor crash
    }
    cThread again(0, getpid());
    EXPECT_EQ(again.checkCompleted(CoyoteOper::LOCAL_WRITE), 0U);
}

TEST(HwFake, UserMapAndUnmap) {
    cThread t(0, getpid());
    constexpr uint32_t n = 4096;
    std::vector<uint8_t> src = pattern(n, 9), dst(n, 0);
    t.userMap(src.data(), n);
    t.userMap(dst.data(), n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src.data(), .len = n}, localSg{.addr = dst.data(), .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(src, dst);
    t.userUnmap(src.data());
    t.userUnmap(dst.data());
    EXPECT_EQ(error_of([&] { t.userUnmap(src.data()); }).first, static_cast<int>(Errc::not_mapped));
}

TEST(HwFake, OffloadAndSync) {
    cThread t(0, getpid());
    constexpr uint32_t n = 4096;
    auto* buf = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
    std::memset(buf, 0x33, n);
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = buf, .len = n});
    std::memset(buf, 0, n);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = buf, .len = n});
    EXPECT_EQ(buf[0], 0x33);
    EXPECT_EQ(buf[n - 1], 0x33);
}

TEST(HwFake, OffloadWithoutCardMemoryIsEperm) {
    EnvGuard shell("COYOTE_SIM_SHELL", "mem=0");
    cThread t(0, getpid());
    auto* buf = t.getMem({CoyoteAllocType::REG, 4096});
    const auto [code, what] = error_of([&] { t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = buf, .len = 4096}); });
    EXPECT_EQ(code, EPERM) << what;
    EXPECT_NE(what.find("IOCTL_OFFLOAD_REQ"), std::string::npos) << what;
    EXPECT_NE(what.find("en_mem=0"), std::string::npos) << what;
}

TEST(HwFake, HugePagesWithoutReservationGiveAClearError) {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    long reserved = -1;
    in >> reserved;
    if (reserved != 0) GTEST_SKIP() << "huge pages are reserved on this machine";
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({CoyoteAllocType::HPF, 4096}); });
    EXPECT_EQ(code, ENOMEM) << what;
    EXPECT_NE(what.find("no huge pages are reserved"), std::string::npos) << what;
}

TEST(HwFake, GpuMemoryWithoutTheBuildOptionNamesIt) {
    if (coyote::detail::hw::gpu::build_support() != nullptr)
        GTEST_SKIP() << "this build has COYOTE_ENABLE_GPU=ON: hw_gpu_test covers getMem(GPU)";
    cThread t(0, getpid());
    const auto [code, what] = error_of([&] { (void)t.getMem({CoyoteAllocType::GPU, 4096}); });
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
    EXPECT_NE(what.find("COYOTE_ENABLE_GPU"), std::string::npos) << what;
}

TEST(HwFake, CtidExhaustion) {
    std::vector<std::unique_ptr<cThread>> threads;
    for (int i = 0; i < N_CTID_MAX; ++i) threads.push_back(std::make_unique<cThread>(0, getpid()));
    const auto [code, what] = error_of([] { cThread extra(0, getpid()); });
    EXPECT_EQ(code, static_cast<int>(Errc::resource_exhausted)) << what;
    EXPECT_NE(what.find("IOCTL_REGISTER_CTID"), std::string::npos) << what;
    EXPECT_NE(what.find("ENOMEM"), std::string::npos) << what;
    threads.pop_back(); // a freed ctid can be registered again
    EXPECT_NO_THROW(cThread again(0, getpid()));
}

TEST(HwFake, MissingDeviceFile) {
    const auto [code, what] = error_of([] { cThread t(3, getpid()); });
    EXPECT_EQ(code, ENOENT) << what;
    EXPECT_NE(what.find("/dev/coyote_fpga_0_v3"), std::string::npos) << what;
    EXPECT_NE(what.find("driver is not loaded"), std::string::npos) << what;
    const auto [code2, what2] = error_of([] { cThread t(0, getpid(), 7); });
    EXPECT_EQ(code2, ENOENT) << what2;
}

TEST(HwFake, ShellWordOfAnotherDriverVersion) {
    EnvGuard word("COYOTE_FAKE_SHELL_WORD", "4294967297"); // AVX, one channel, but no vFPGA (n_fpga_reg 0)
    const auto [code, what] = error_of([] { cThread t(0, getpid()); });
    EXPECT_EQ(code, static_cast<int>(Errc::protocol)) << what;
    EXPECT_NE(what.find("IOCTL_READ_SHELL_CONFIG"), std::string::npos) << what;
    EXPECT_NE(what.find("driver of another version"), std::string::npos) << what;
    EnvGuard bits("COYOTE_FAKE_SHELL_WORD", "281474976710720"); // n_fpga_reg 1 (bit 48) and unknown bit 6
    const auto [code2, what2] = error_of([] { cThread t(0, getpid()); });
    EXPECT_EQ(code2, static_cast<int>(Errc::protocol)) << what2;
    EXPECT_NE(what2.find("unknown bits"), std::string::npos) << what2;
}

TEST(HwFake, PermissionDenied) {
    EnvGuard access("COYOTE_FAKE_ACCESS", "denied");
    const auto [code, what] = error_of([] { cThread t(0, getpid()); });
    EXPECT_EQ(code, EACCES) << what;
    EXPECT_NE(what.find("udev"), std::string::npos) << what;
}

TEST(HwFake, ReconfigurationDevice) {
    coyote::detail::hw::ReconfigDevice rc(0);
    EXPECT_TRUE(rc.pr_enabled());
    auto buf = rc.alloc(3 << 20, getpid(), 7); // two pages of 2 MiB
    EXPECT_EQ(buf.size(), 4ULL << 20);
    std::memset(buf.data(), 0xAB, 1000);
    EXPECT_NO_THROW(rc.reconfigure_app(buf, 1000, 0));
    EXPECT_NO_THROW(rc.reconfigure_shell(buf, 1000));
    const auto [code, what] = error_of([&] { rc.reconfigure_app(buf, 1000, 5); }); // no vFPGA 5
    EXPECT_EQ(code, EPERM) << what;
    EXPECT_NE(what.find("IOCTL_RECONFIGURE_APP"), std::string::npos) << what;
    EXPECT_EQ(error_of([&] { rc.reconfigure_app(buf, 5ULL << 20, 0); }).first, static_cast<int>(Errc::invalid_argument));
    EXPECT_EQ(error_of([] { coyote::detail::hw::ReconfigDevice missing(3); }).first, ENOENT);
}

/// The first `n` argument words the last `request` passed to the fake driver (empty when it was not called).
std::vector<uint64_t> last_args(unsigned long request, size_t n) {
    using Fn = int (*)(unsigned long, uint64_t*, size_t);
    static const auto fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "coyote_fake_last_ioctl_args"));
    std::vector<uint64_t> out(n);
    if (fn == nullptr || fn(request, out.data(), n) != 0) return {};
    return out;
}

TEST(HwFake, ArgumentsOfEveryIoctl) {
    const auto pid = static_cast<uint64_t>(getpid());
    std::atomic<int> got{-1};
    auto t = std::make_unique<cThread>(0, getpid(), 0, [&](int v) { got = v; });
    const auto ctid = static_cast<uint64_t>(t->getCtid());
    EXPECT_EQ(last_args(hwabi::k_register_ctid, 1), (std::vector<uint64_t>{pid}));
    EXPECT_FALSE(last_args(hwabi::k_read_shell_config, 1).empty());
    EXPECT_FALSE(last_args(hwabi::k_get_ip_address, 1).empty());
    EXPECT_FALSE(last_args(hwabi::k_get_mac_address, 1).empty());
    const auto efd = last_args(hwabi::k_register_eventfd, 2);
    ASSERT_EQ(efd.size(), 2U);
    EXPECT_EQ(efd[0], ctid);
    char link[64] = {0};
    ASSERT_GT(::readlink(("/proc/self/fd/" + std::to_string(efd[1])).c_str(), link, sizeof(link) - 1), 0);
    EXPECT_NE(std::string(link).find("eventfd"), std::string::npos) << link;

    auto* buf = t->getMem({CoyoteAllocType::REG, 5000});
    const auto addr = reinterpret_cast<uint64_t>(buf);
    EXPECT_EQ(last_args(hwabi::k_map_user_mem, 4), (std::vector<uint64_t>{addr, 8192, ctid, ~0ULL}));
    t->invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = buf, .len = 4096});
    EXPECT_EQ(last_args(hwabi::k_offload_req, 3), (std::vector<uint64_t>{addr, 4096, ctid}));
    t->invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = buf, .len = 2048});
    EXPECT_EQ(last_args(hwabi::k_sync_req, 3), (std::vector<uint64_t>{addr, 2048, ctid}));
    t->freeMem(buf);
    EXPECT_EQ(last_args(hwabi::k_unmap_user_mem, 2), (std::vector<uint64_t>{addr, ctid}));

    t->setCSR(ctid, 2);
    t->setCSR(77, 1);
    ASSERT_TRUE(eventually([&] { return got.load() == 77; }));
    EXPECT_EQ(last_args(hwabi::k_get_notification_value, 1), (std::vector<uint64_t>{ctid}));
    EXPECT_TRUE(eventually(
        [&] { return last_args(hwabi::k_set_notification_processed, 1) == std::vector<uint64_t>{ctid}; }));
    t.reset();
    EXPECT_EQ(last_args(hwabi::k_unregister_eventfd, 1), (std::vector<uint64_t>{ctid}));
    EXPECT_EQ(last_args(hwabi::k_unregister_ctid, 1), (std::vector<uint64_t>{ctid}));
}

TEST(HwFake, DriverErrorReturns) {
    const int fd = ::open("/dev/coyote_fpga_0_v0", O_RDWR);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    hwabi::Args a{};
    EXPECT_EQ(::ioctl(fd, 0x40084699UL, a.data()), 1); // unknown call: the driver's ret_val 1
    a[0] = static_cast<uint64_t>(getpid());
    ASSERT_EQ(::ioctl(fd, hwabi::k_register_ctid, a.data()), 0);
    const uint64_t ctid = a[1];
    a = {};
    a[0] = ctid;
    a[1] = 9999; // not a file descriptor
    errno = 0;
    EXPECT_EQ(::ioctl(fd, hwabi::k_register_eventfd, a.data()), -1);
    EXPECT_EQ(errno, EBADF);
    a[1] = static_cast<uint64_t>(fd); // a file, not an eventfd
    EXPECT_EQ(::ioctl(fd, hwabi::k_register_eventfd, a.data()), -1);
    EXPECT_EQ(errno, EINVAL);
    a = {};
    a[0] = 0; // null address
    a[1] = 4096;
    a[2] = ctid;
    EXPECT_EQ(::ioctl(fd, hwabi::k_map_user_mem, a.data()), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_GT(::ioctl(fd, hwabi::k_read_shell_config, nullptr), 0); // copy_to_user of a null pointer fails
    a = {};
    EXPECT_EQ(::ioctl(fd, hwabi::k_read_shell_config, a.data()), 0);
    EXPECT_NE(a[0] & 0xFF000000000000ULL, 0U); // n_fpga_reg
    a = {};
    a[0] = ctid;
    EXPECT_EQ(::ioctl(fd, hwabi::k_unregister_ctid, a.data()), 0);
    EXPECT_EQ(::close(fd), 0);
}

}  // namespace
