// The sim vFPGA's local data path: memory, TLB and page faults, commands, completions, card memory,
// CSRs, configuration registers, interrupts.
#include "unit/test_support.hpp"
#include <sys/mman.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.hpp"

using coyote::CoyoteAlloc;
using coyote::CoyoteAllocType;
using coyote::CoyoteOper;
using coyote::cThread;
using coyote::Errc;
using coyote::localSg;
using coyote::syncSg;
using coyote::detail::CmplClass;
using coyote::detail::Command;
using coyote::detail::PostStatus;

using coyote_test::EnvGuard;
using coyote_test::error_of;
using coyote_test::eventually;
using coyote_test::wait_completed;

namespace {

void fill_pattern(void* p, size_t n, uint32_t seed) {
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 131 + seed) & 0xff);
}

constexpr int k_err = static_cast<int>(Errc::not_mapped);

// Device numbers: each test that changes the environment uses its own, so cached devices never mix.
class SimDataPath : public coyote_test::SimTest {};

TEST_F(SimDataPath, TransferRoundTripThroughPassthrough) {
    cThread t(0, getpid(), 0);
    EXPECT_EQ(t.backendName(), "sim");
    const uint32_t n = 64 * 1024;
    auto* src = t.getMem({CoyoteAllocType::HPF, n});
    auto* dst = t.getMem({CoyoteAllocType::HPF, n});
    fill_pattern(src, n, 7);
    std::memset(dst, 0, n);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = n}, localSg{.addr = dst, .len = n});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 1u);
    EXPECT_EQ(std::memcmp(src, dst, n), 0);
}

TEST_F(SimDataPath, LargeTransfersRunOnTheWorkerInOrder) {
    cThread t(0, getpid(), 0);
    const uint32_t n = 8u << 20;
    auto* a = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::THP, n}));
    auto* b = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::THP, n}));
    fill_pattern(a, n, 3);
    std::memset(b, 0, n);
    t.clearCompleted();
    // Read then write on the same dest: the write must receive the read's data, in order.
    for (uint32_t i = 0; i < 4; ++i) {
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a + i * (n / 4), .len = n / 4, .dest = 2});
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = b + i * (n / 4), .len = n / 4, .dest = 2});
    }
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 4));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 4u);
    EXPECT_EQ(std::memcmp(a, b, n), 0);
}

TEST_F(SimDataPath, AllocationTypesAndAlignment) {
    cThread t(0, getpid(), 0);
    auto* reg = t.getMem({CoyoteAllocType::REG, 100});
    auto* thp = t.getMem({CoyoteAllocType::THP, 4096});
    auto* hpf = t.getMem({CoyoteAllocType::HPF, 3u << 20});
    auto* prm = t.getMem({CoyoteAllocType::PRM, 1});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(reg) % coyote::PAGE_SIZE, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(thp) % coyote::HUGE_PAGE_SIZE, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(hpf) % coyote::HUGE_PAGE_SIZE, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(prm) % coyote::HUGE_PAGE_SIZE, 0u);
    // The whole rounded size is usable.
    std::memset(hpf, 1, 4u << 20);
    std::memset(reg, 1, 4096);
    t.freeMem(thp);
    auto [code, what] = error_of([&] { t.getMem({CoyoteAllocType::GPU, 4096}); });
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported));
    EXPECT_NE(what.find("GPU memory is not supported by the sim backend"), std::string::npos) << what;
}

TEST_F(SimDataPath, RemoteBufferLivesInShmAndIsRemovedOnFree) {
    cThread t(0, getpid(), 0);
    void* p = t.getMem({.alloc = CoyoteAllocType::HPF, .size = 1u << 20, .remote = true});
    ASSERT_NE(p, nullptr);
    const std::string prefix = "/dev/shm/coyote-sim." + std::to_string(getuid()) + "." + std::to_string(getpid()) + ".d0v0.buf";
    std::string found;
    for (int i = 0; i < 64 && found.empty(); ++i)
        if (::access((prefix + std::to_string(i)).c_str(), F_OK) == 0) found = prefix + std::to_string(i);
    ASSERT_FALSE(found.empty()) << "no shm segment " << prefix << "<N>";
    std::memset(p, 0x5a, 1u << 20);
    t.freeMem(p);
    EXPECT_NE(::access(found.c_str(), F_OK), 0) << found << " still exists after freeMem";
}

TEST_F(SimDataPath, PageFaultPathMapsProcessMemoryAndCountsIt) {
    cThread t(0, getpid(), 0);
    std::vector<uint8_t> src(3 * 4096 + 17), dst(src.size());
    fill_pattern(src.data(), src.size(), 11);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src.data(), .len = static_cast<uint32_t>(src.size())},
             localSg{.addr = dst.data(), .len = static_cast<uint32_t>(dst.size())});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(src, dst);
    auto dev = coyote::detail::open_device(0, 0);
    const std::string dbg = dev->debug_string(t.getCtid());
    const auto pos = dbg.find("Page faults received:");
    ASSERT_NE(pos, std::string::npos) << dbg;
    EXPECT_GT(std::stoul(dbg.substr(dbg.find('\t', pos) + 1)), 0u) << dbg;
}

// The page-fault path maps the 2 MiB-aligned region around a range, but never beyond the mappings that hold
// it: a guard page next to the buffer stays unmapped for the vFPGA.
TEST_F(SimDataPath, PageFaultsMapTheRegionAroundTheRangeWithinItsMapping) {
    cThread t(0, getpid(), 0);
    auto dev = coyote::detail::open_device(0, 0);
    auto faults = [&] {
        const std::string dbg = dev->debug_string(t.getCtid());
        const auto pos = dbg.find("Page faults received:");
        return pos == std::string::npos ? ~0ul : std::stoul(dbg.substr(dbg.find('\t', pos) + 1));
    };
    // 6 MiB reserved; a 2 MiB-aligned 4 MiB window is made accessible, the rest stays PROT_NONE.
    constexpr std::size_t mib = 1u << 20;
    void* res = ::mmap(nullptr, 6 * mib, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(res, MAP_FAILED);
    auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(res) + 2 * mib - 1) / (2 * mib) * (2 * mib));
    ASSERT_EQ(::mprotect(base, 4 * mib, PROT_READ | PROT_WRITE), 0);
    std::memset(base, 0, 4 * mib);
    auto copy = [&](uint8_t* src, uint8_t* dst, uint32_t len) {
        t.clearCompleted();
        t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = src, .len = len}, localSg{.addr = dst, .len = len});
        return wait_completed(t, CoyoteOper::LOCAL_WRITE, 1);
    };
    const unsigned long before = faults();
    fill_pattern(base + 100, 4096, 3);
    ASSERT_TRUE(copy(base + 100, base + mib, 4096));
    EXPECT_EQ(0, std::memcmp(base + 100, base + mib, 4096));
    const unsigned long first = faults() - before;
    EXPECT_EQ(first, 2 * mib / 4096) << "the first 2 MiB region is mapped whole";
    // Anywhere else in that region: no new fault.
    ASSERT_TRUE(copy(base + 5000, base + 2 * mib - 8192, 4096));
    EXPECT_EQ(faults() - before, first);
    // The second region ends at the end of the mapping; a range reaching past it fails and maps nothing there.
    ASSERT_TRUE(copy(base + 3 * mib, base + 4 * mib - 4096, 4096));
    EXPECT_EQ(faults() - before, first + 2 * mib / 4096);
    auto [code, what] = error_of([&] { (void)copy(base + 4 * mib - 4096, base, 8192); });
    EXPECT_EQ(code, k_err) << what;
    ::munmap(res, 6 * mib);
}

namespace {
/// `p` was just unmapped. The kernel may hand its range to the next mmap of anyone (the sanitizers' allocators
/// among them), so a PROT_NONE guard claims it first: a runtime that still trusted its old translation would then
/// read the guard and crash instead of refusing. If another mapping won the race, reading there is legal process
/// memory and the refusal is not checked this run.
void expect_refused_once_unmapped(cThread& t, void* p) {
    void* guard = ::mmap(p, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (guard != p) {
        std::fprintf(stderr, "range at %p was reused at once; its refusal is not checked this run\n", p);
        if (guard != MAP_FAILED) ::munmap(guard, 4096);
        return;
    }
    auto [code, what] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = p, .len = 64}); });
    EXPECT_EQ(code, k_err) << what;
    EXPECT_NE(what.find("readable"), std::string::npos) << what; // the guard's PROT_NONE, named
    ::munmap(guard, 4096);
}
} // namespace

TEST_F(SimDataPath, UserMappedRangeRemappedWithoutTheAccessIsRefused) {
    // A userMap'd range replaced behind the runtime's back by a mapping with less access: the post is refused
    // (before, the probe saw only holes, and the copy faulted).
    cThread t(0, getpid(), 0);
    auto* m = static_cast<uint8_t*>(::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(m, MAP_FAILED);
    t.userMap(m, 8192);
    std::vector<uint8_t> src(64, 7);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src.data(), .len = 64, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = m, .len = 64, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(m[63], 7);
    // Read-only now: still a source, no longer a destination.
    ASSERT_EQ(::mmap(m, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), m);
    auto [code, what] = error_of([&] { t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = m, .len = 64}); });
    EXPECT_EQ(code, k_err) << what;
    EXPECT_NE(what.find("no longer writable"), std::string::npos) << what;
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = m + 4096, .len = 64, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    // No access at all: refused as a source too, whole or in its second page only.
    ASSERT_EQ(::mprotect(m + 4096, 4096, PROT_NONE), 0);
    auto [c2, w2] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = m + 4000, .len = 200}); });
    EXPECT_EQ(c2, k_err) << w2;
    EXPECT_NE(w2.find("no longer readable"), std::string::npos) << w2;
    ::munmap(m, 8192);
}

TEST_F(SimDataPath, BadAddressesAreRejectedNotCrashed) {
    cThread t(0, getpid(), 0);
    auto* buf = t.getMem({CoyoteAllocType::REG, 4096});
    // read-only memory as a write destination
    void* ro = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(ro, MAP_FAILED);
    auto [c4, w4] = error_of([&] { t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = ro, .len = 64}); });
    EXPECT_EQ(c4, k_err) << w4;
    EXPECT_NE(w4.find("not writable"), std::string::npos) << w4;
    // ... but fine as a read source
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = ro, .len = 64, .dest = 9});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    std::vector<uint8_t> sink(64, 1);
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = sink.data(), .len = 64, .dest = 9});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(sink, std::vector<uint8_t>(64, 0));
    ::munmap(ro, 4096);
    // null
    auto [c1, w1] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = nullptr, .len = 64}); });
    EXPECT_EQ(c1, k_err) << w1;
    EXPECT_NE(w1.find("0x0"), std::string::npos) << w1;
    // outside the process
    void* far = reinterpret_cast<void*>(0x7e0000000000ULL);
    auto [c2, w2] = error_of([&] { t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = far, .len = 64}); });
    EXPECT_EQ(c2, k_err) << w2;
    EXPECT_NE(w2.find("0x7e0000000000"), std::string::npos) << w2;
    // kernel address
    void* kern = reinterpret_cast<void*>(0xffff800000000000ULL);
    EXPECT_EQ(error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = kern, .len = 8}); }).first, k_err);
    // freed by freeMem
    t.freeMem(buf);
    expect_refused_once_unmapped(t, buf);
    // mapped with userMap, then munmapped behind the runtime's back
    void* m = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    t.userMap(m, 8192);
    ::munmap(m, 8192);
    expect_refused_once_unmapped(t, m);
    // userUnmap of an address never mapped
    int local = 0;
    EXPECT_EQ(error_of([&] { t.userUnmap(&local); }).first, k_err);
    // userMap of memory the process does not have
    EXPECT_EQ(error_of([&] { t.userMap(far, 4096); }).first, k_err);
}

TEST_F(SimDataPath, RangeUnmappedAfterItsCommandsCompletedIsRefused) {
    // Process memory (not getMem) is probed at every post; back-to-back posts on the same range may skip the probe
    // while one of them is in flight, but once they completed an unmapped range must be refused again.
    cThread t(0, getpid(), 0);
    const uint32_t n = 256 * 1024;
    auto* src = t.getMem({CoyoteAllocType::HPF, n});
    fill_pattern(src, n, 11);
    void* dst = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(dst, MAP_FAILED);
    const localSg a{.addr = src, .len = n};
    const localSg b{.addr = dst, .len = n};
    t.clearCompleted();
    for (int i = 0; i < 8; ++i) t.invoke(CoyoteOper::LOCAL_TRANSFER, a, b);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 8));
    EXPECT_EQ(std::memcmp(src, dst, n), 0);
    ::munmap(dst, n);
    auto [code, what] = error_of([&] { t.invoke(CoyoteOper::LOCAL_TRANSFER, a, b); });
    EXPECT_EQ(code, k_err) << what;
    EXPECT_NE(what.find("no longer mapped"), std::string::npos) << what;
    // ... and so is a sub-range of it
    auto [code2, what2] = error_of([&] {
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = static_cast<char*>(dst) + 4096, .len = 64, .dest = 9});
    });
    EXPECT_EQ(code2, k_err) << what2;
}

TEST_F(SimDataPath, UserMapAndUnmap) {
    cThread t(0, getpid(), 0);
    void* m = ::mmap(nullptr, 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    t.userMap(m, 16384);
    fill_pattern(m, 8192, 1);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = m, .len = 8192},
             localSg{.addr = static_cast<char*>(m) + 8192, .len = 8192});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(m, static_cast<char*>(m) + 8192, 8192), 0);
    t.userUnmap(m);
    EXPECT_EQ(error_of([&] { t.userUnmap(m); }).first, k_err);
    ::munmap(m, 16384);
}

TEST_F(SimDataPath, CommandValidation) {
    cThread t(0, getpid(), 0);
    auto* buf = static_cast<char*>(t.getMem({CoyoteAllocType::HPF, 4u << 20}));
    const auto inval = static_cast<int>(Errc::invalid_argument);
    // oversize
    auto [c1, w1] = error_of([&] {
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = buf, .len = static_cast<uint32_t>(coyote::MAX_TRANSFER_SIZE + 1)});
    });
    EXPECT_EQ(c1, inval) << w1;
    EXPECT_NE(w1.find("MAX_TRANSFER_SIZE"), std::string::npos) << w1;
    // dest out of range
    auto [c2, w2] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = buf, .len = 64, .dest = 16}); });
    EXPECT_EQ(c2, inval) << w2;
    EXPECT_NE(w2.find("dest 16"), std::string::npos) << w2;
    // stream that is not local
    EXPECT_EQ(error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = buf, .len = 64, .stream = coyote::STRM_RDMA}); }).first,
              inval);
    // unknown ctid (contract level)
    auto dev = coyote::detail::open_device(0, 0);
    Command c;
    c.oper = CoyoteOper::LOCAL_READ;
    c.ctid = 63;
    c.src = {reinterpret_cast<uint64_t>(buf), 64};
    if (t.getCtid() != 63) {
        auto [c3, w3] = error_of([&] { dev->post(c); });
        EXPECT_EQ(c3, inval) << w3;
        EXPECT_NE(w3.find("ctid 63"), std::string::npos) << w3;
    }
    c.ctid = 64;
    EXPECT_EQ(error_of([&] { dev->post(c); }).first, inval);
    // length 0 is fine and completes
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = nullptr, .len = 0});
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = nullptr, .len = 0});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 1u);
}

TEST_F(SimDataPath, LocalWriteStaysPendingUntilDataArrives) {
    cThread t(0, getpid(), 0);
    auto* src = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    auto* dst = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    fill_pattern(src, 4096, 5);
    std::memset(dst, 0, 4096);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = dst, .len = 4096, .dest = 3});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
    // Half the data: still pending.
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = 2048, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src + 2048, .len = 2048, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(src, dst, 4096), 0);
    // Data that arrives first is buffered for the next write of that dest.
    std::memset(dst, 0, 4096);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = 4096, .dest = 4});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 3));
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = dst, .len = 4096, .dest = 4});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 2));
    EXPECT_EQ(std::memcmp(src, dst, 4096), 0);
}

TEST_F(SimDataPath, LastFalseIsNotCounted) {
    cThread t(0, getpid(), 0);
    auto* a = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 8192}));
    auto* b = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 8192}));
    fill_pattern(a, 8192, 9);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = 4096}, localSg{.addr = b, .len = 4096}, false);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a + 4096, .len = 4096}, localSg{.addr = b + 4096, .len = 4096},
             true);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(a, b, 8192), 0); // both moved their data
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 1u);
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_READ), 1u);
    t.clearCompleted();
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
}

TEST_F(SimDataPath, BusyBeyondTwentyTwoCommandsInFlight) {
    cThread t(0, getpid(), 0);
    auto dev = coyote::detail::open_device(0, 0);
    auto* buf = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    Command w;
    w.oper = CoyoteOper::LOCAL_WRITE;
    w.ctid = t.getCtid();
    w.dst = {reinterpret_cast<uint64_t>(buf), 64, coyote::STRM_HOST, 7};
    t.clearCompleted();
    for (int i = 0; i < coyote::CMD_FIFO_DEPTH - coyote::CMD_FIFO_THR; ++i) ASSERT_EQ(dev->post(w), PostStatus::ok) << i;
    EXPECT_EQ(dev->post(w), PostStatus::busy);
    // Another Coyote thread's read on dest 7 feeds the pending writes: they complete and free the FIFO.
    cThread feeder(0, getpid(), 0);
    auto* fb = feeder.getMem({CoyoteAllocType::REG, 4096});
    feeder.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = fb, .len = 22 * 64, .dest = 7});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 22));
    EXPECT_EQ(dev->post(w), PostStatus::ok);
}

TEST_F(SimDataPath, OffloadSyncRoundTripAndCardStreams) {
    cThread t(0, getpid(), 0);
    const uint32_t n = 3u << 20; // spans two card chunks
    auto* a = static_cast<char*>(t.getMem({CoyoteAllocType::HPF, n}));
    auto* b = static_cast<char*>(t.getMem({CoyoteAllocType::HPF, n}));
    // Card memory never written reads as zeros.
    std::memset(a, 0x77, n);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = a, .len = n});
    EXPECT_EQ(std::count(a, a + n, 0), static_cast<long>(n));
    // Offload, clobber the host copy, sync back.
    fill_pattern(a, n, 21);
    std::vector<char> ref(a, a + n);
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = a, .len = n});
    std::memset(a, 0, n);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = a, .len = n});
    EXPECT_EQ(std::memcmp(a, ref.data(), n), 0);
    // Card stream: read the card copy of a, write it to the host buffer b.
    std::memset(a, 0, n);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = n, .stream = coyote::STRM_CARD},
             localSg{.addr = b, .len = n, .stream = coyote::STRM_HOST});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(b, ref.data(), n), 0);
    EXPECT_EQ(std::count(a, a + n, 0), static_cast<long>(n)); // host copy of a untouched
    // Host to card: b's host data into b's card copy, then sync.
    fill_pattern(b, n, 33);
    std::vector<char> ref2(b, b + n);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = b, .len = n}, localSg{.addr = b, .len = n, .stream = coyote::STRM_CARD});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 2));
    std::memset(b, 0, n);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = b, .len = n});
    EXPECT_EQ(std::memcmp(b, ref2.data(), n), 0);
}

TEST_F(SimDataPath, CsrAccessAndRange) {
    cThread t(0, getpid(), 0);
    t.setCSR(0xdeadbeefcafeULL, 0);
    t.setCSR(42, 8191);
    EXPECT_EQ(t.getCSR(0), 0xdeadbeefcafeULL);
    EXPECT_EQ(t.getCSR(8191), 42u);
    auto [c1, w1] = error_of([&] { t.setCSR(1, 8192); });
    EXPECT_EQ(c1, static_cast<int>(Errc::invalid_argument));
    EXPECT_NE(w1.find("8192"), std::string::npos) << w1;
    EXPECT_NE(w1.find("offset"), std::string::npos) << w1;
    EXPECT_EQ(error_of([&] { (void)t.getCSR(100000); }).first, static_cast<int>(Errc::invalid_argument));
}

TEST_F(SimDataPath, SixtyFifthCtidIsRefused) {
    auto dev = coyote::detail::open_device(5, 0);
    std::vector<int32_t> ctids;
    for (int i = 0; i < coyote::N_CTID_MAX; ++i) ctids.push_back(dev->register_ctid(getpid()));
    auto [code, what] = error_of([&] { dev->register_ctid(getpid()); });
    EXPECT_EQ(code, static_cast<int>(Errc::resource_exhausted));
    EXPECT_NE(what.find("all 64 ctids of vFPGA 0 on device 5 are in use"), std::string::npos) << what;
    // Through cThread too.
    EXPECT_EQ(error_of([&] { cThread t(0, getpid(), 5); }).first, static_cast<int>(Errc::resource_exhausted));
    dev->unregister_ctid(ctids.back());
    EXPECT_NO_THROW({ cThread t(0, getpid(), 5); });
    ctids.pop_back();
    for (auto c : ctids) dev->unregister_ctid(c);
}

TEST_F(SimDataPath, ConcurrentCThreadsInSeveralThreads) {
    constexpr int k_threads = 4;
    constexpr int k_iters = 200;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < k_threads; ++i) {
        threads.emplace_back([&, i] {
            try {
                cThread t(0, getpid(), 0);
                const uint32_t n = i % 2 == 0 ? 256 : 128 * 1024; // inline and worker paths
                auto* a = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
                auto* b = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, n}));
                t.clearCompleted();
                for (int k = 0; k < k_iters; ++k) {
                    fill_pattern(a, n, static_cast<uint32_t>(i * 1000 + k));
                    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = n}, localSg{.addr = b, .len = n});
                    if (!wait_completed(t, CoyoteOper::LOCAL_TRANSFER, static_cast<uint32_t>(k + 1)) ||
                        std::memcmp(a, b, n) != 0)
                        failures++;
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
                failures++;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
}

TEST_F(SimDataPath, ConfigurationRegisters) {
    cThread t(0, getpid(), 0);
    auto dev = coyote::detail::open_device(0, 0);
    ASSERT_TRUE(t.getShellConfig().en_avx);
    auto* a = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    auto* b = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    fill_pattern(a, 4096, 2);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = 4096}, localSg{.addr = b, .len = 4096});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    const uint32_t stat = static_cast<uint32_t>(coyote::CnfgAvxRegs::STAT_DMA_REG) + static_cast<uint32_t>(t.getCtid());
    EXPECT_EQ(dev->read_cnfg(stat), (1ULL << 32) | 1ULL);
    EXPECT_GE(dev->read_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::STAT_REG_0)), 1u);
    // A command posted as one 256-bit store (src ctrl, src addr, dst ctrl, dst addr).
    std::memset(b, 0, 4096);
    const uint64_t ctid = static_cast<uint64_t>(t.getCtid());
    const uint64_t src_ctrl = (ctid << CTRL_PID_OFFS) | CTRL_LAST | CTRL_START | (1ULL << CTRL_STRM_OFFS) | (4096ULL << CTRL_LEN_OFFS);
    const uint64_t cmd[4] = {src_ctrl, reinterpret_cast<uint64_t>(a), src_ctrl, reinterpret_cast<uint64_t>(b)};
    dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::CTRL_REG), cmd);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 2));
    EXPECT_EQ(std::memcmp(a, b, 4096), 0);
    // CLR_STAT through the register clears the counters.
    const uint64_t clr[4] = {CTRL_CLR_STAT | (ctid << CTRL_PID_OFFS), 0, CTRL_CLR_STAT | (ctid << CTRL_PID_OFFS), 0};
    dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::CTRL_REG), clr);
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
    // Plain registers keep what was written; unknown and read-only ones are refused.
    const uint64_t isr[4] = {0x1234, 0, 0, 0};
    dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::ISR_REG), isr);
    EXPECT_EQ(dev->read_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::ISR_REG)), 0x1234u);
    EXPECT_EQ(error_of([&] { dev->write_cnfg(30, isr); }).first, static_cast<int>(Errc::invalid_argument));
    EXPECT_EQ(error_of([&] { (void)dev->read_cnfg(30); }).first, static_cast<int>(Errc::invalid_argument));
    EXPECT_EQ(error_of([&] { dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::STAT_REG_0), isr); }).first,
              static_cast<int>(Errc::invalid_argument));
    // TCP is off by default.
    EXPECT_EQ(error_of([&] { dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::TCP_OPEN_PORT_REG), isr); }).first,
              static_cast<int>(Errc::not_supported));
}

TEST_F(SimDataPath, LegacyLayoutRegisters) {
    EnvGuard s("COYOTE_SIM_SHELL", "avx=0");
    cThread t(0, getpid(), 6);
    ASSERT_FALSE(t.getShellConfig().en_avx);
    auto dev = coyote::detail::open_device(6, 0);
    auto* a = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    auto* b = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    fill_pattern(a, 4096, 4);
    t.clearCompleted();
    const uint64_t ctid = static_cast<uint64_t>(t.getCtid());
    const uint64_t ctrl = (ctid << CTRL_PID_OFFS) | CTRL_LAST | CTRL_START | (1ULL << CTRL_STRM_OFFS) | (4096ULL << CTRL_LEN_OFFS);
    auto wr = [&](coyote::CnfgLegRegs r, uint64_t v) {
        const uint64_t w[1] = {v};
        dev->write_cnfg(static_cast<uint32_t>(r), w);
    };
    wr(coyote::CnfgLegRegs::VADDR_WR_REG, reinterpret_cast<uint64_t>(b));
    wr(coyote::CnfgLegRegs::CTRL_REG_2, ctrl);
    wr(coyote::CnfgLegRegs::VADDR_RD_REG, reinterpret_cast<uint64_t>(a));
    wr(coyote::CnfgLegRegs::CTRL_REG, ctrl);
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(std::memcmp(a, b, 4096), 0);
    EXPECT_EQ(dev->read_cnfg(static_cast<uint32_t>(coyote::CnfgLegRegs::STAT_DMA_REG) + static_cast<uint32_t>(ctid)),
              (1ULL << 32) | 1ULL);
    EXPECT_EQ(dev->read_cnfg(static_cast<uint32_t>(coyote::CnfgLegRegs::STAT_REG_1)), 1u);
    const uint64_t two[2] = {1, 2};
    EXPECT_EQ(error_of([&] { dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgLegRegs::ISR_REG), two); }).first,
              static_cast<int>(Errc::invalid_argument));
    EXPECT_EQ(error_of([&] { (void)dev->read_cnfg(23); }).first, static_cast<int>(Errc::invalid_argument));
}

TEST_F(SimDataPath, DisabledFeaturesFailWithNotSupported) {
    const auto ns = static_cast<int>(Errc::not_supported);
    {
        EnvGuard s("COYOTE_SIM_SHELL", "strm=0,mem=0,rdma=0,pr=0");
        cThread t(0, getpid(), 7);
        EXPECT_FALSE(t.getShellConfig().en_strm);
        EXPECT_FALSE(t.getShellConfig().en_mem);
        auto* a = t.getMem({CoyoteAllocType::REG, 4096});
        auto [c1, w1] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a, .len = 64}); });
        EXPECT_EQ(c1, ns);
        EXPECT_NE(w1.find("STRM_HOST"), std::string::npos) << w1;
        auto [c2, w2] = error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = a, .len = 64, .stream = coyote::STRM_CARD}); });
        EXPECT_EQ(c2, ns);
        EXPECT_NE(w2.find("STRM_CARD"), std::string::npos) << w2;
        auto [c3, w3] = error_of([&] { t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = a, .len = 64}); });
        EXPECT_EQ(c3, ns);
        EXPECT_NE(w3.find("mem=0"), std::string::npos) << w3;
        auto [c4, w4] = error_of([&] { t.getMem({CoyoteAllocType::PRM, 4096}); });
        EXPECT_EQ(c4, ns) << w4;
        // RDMA posts at the contract level.
        auto dev = coyote::detail::open_device(7, 0);
        Command c;
        c.oper = CoyoteOper::REMOTE_RDMA_WRITE;
        c.ctid = t.getCtid();
        c.src = {reinterpret_cast<uint64_t>(a), 64};
        auto [c5, w5] = error_of([&] { dev->post(c); });
        EXPECT_EQ(c5, ns);
        EXPECT_NE(w5.find("rdma=0"), std::string::npos) << w5;
        const uint64_t arp[4] = {0x0a000001, 0, 0, 0};
        EXPECT_EQ(error_of([&] { dev->write_cnfg(static_cast<uint32_t>(coyote::CnfgAvxRegs::NET_ARP_REG), arp); }).first, ns);
    }
}

TEST_F(SimDataPath, InterruptHandlerCanBeRemovedAndReinstalled) {
    // The interrupt source is the plug-in model (CSR 1 raises an interrupt for the ctid in CSR 2); the
    // built-in models raise none, so the contract-level path is driven through it in sim_models_test.
    std::mutex m;
    std::condition_variable cv;
    std::vector<int> got;
    std::thread::id handler_thread;
    auto dev = coyote::detail::open_device(0, 0);
    cThread t(0, getpid(), 0, [&](int v) {
        std::lock_guard lk(m);
        got.push_back(v);
        handler_thread = std::this_thread::get_id();
        cv.notify_all();
    });
    // Removing and reinstalling the handler is clean.
    dev->set_interrupt_handler(t.getCtid(), nullptr);
    dev->set_interrupt_handler(t.getCtid(), [&](int v) {
        std::lock_guard lk(m);
        got.push_back(v + 1000);
        handler_thread = std::this_thread::get_id();
        cv.notify_all();
    });
    EXPECT_TRUE(got.empty());
}

TEST_F(SimDataPath, DebugStringHasTheCounters) {
    cThread t(0, getpid(), 0);
    auto* a = t.getMem({CoyoteAllocType::REG, 4096});
    auto* b = t.getMem({CoyoteAllocType::REG, 4096});
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = a, .len = 1000}, localSg{.addr = b, .len = 1000});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    auto dev = coyote::detail::open_device(0, 0);
    const std::string s = dev->debug_string(t.getCtid());
    for (const char* label : {"Completed local reads:", "Completed local writes:", "Commands posted:", "Commands pending:",
                              "Bytes read", "Bytes written", "Page faults received:", "Notifications received:"})
        EXPECT_NE(s.find(label), std::string::npos) << label << "\n" << s;
    EXPECT_NE(s.find("1000"), std::string::npos) << s;
}

TEST_F(SimDataPath, FreeingABufferCancelsItsPendingWrite) {
    cThread t(0, getpid(), 0);
    auto* dst = t.getMem({CoyoteAllocType::REG, 4096});
    auto* src = t.getMem({CoyoteAllocType::REG, 4096});
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = dst, .len = 4096, .dest = 5});
    t.freeMem(dst);
    auto [code, what] = error_of([&] { (void)t.checkCompleted(CoyoteOper::LOCAL_WRITE); });
    EXPECT_EQ(code, k_err) << what;
    EXPECT_NE(what.find("cancelled"), std::string::npos) << what;
    // Data for dest 5 now has nowhere to go: it is buffered, nothing is written to the freed address.
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = 4096, .dest = 5});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_READ, 1));
    EXPECT_EQ(t.checkCompleted(CoyoteOper::LOCAL_WRITE), 0u);
}

TEST_F(SimDataPath, PendingWriteIntoMemoryThatLostItsAccessFailsInsteadOfCrashing) {
    // A LOCAL_WRITE into process memory (not getMem) waits for its data; meanwhile the memory is made read-only,
    // or unmapped and its range taken by a PROT_NONE mapping. When the data comes the write fails, naming why,
    // and its data is dropped (before: the copy crashed the process).
    cThread t(0, getpid(), 0);
    auto* src = static_cast<uint8_t*>(t.getMem({CoyoteAllocType::REG, 8192}));
    std::memset(src, 0x5a, 8192);
    for (const int prot : {PROT_READ, PROT_NONE}) {
        SCOPED_TRACE(prot == PROT_READ ? "read-only" : "PROT_NONE");
        auto* m = static_cast<uint8_t*>(
            ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        ASSERT_NE(m, MAP_FAILED);
        t.clearCompleted();
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = m, .len = 8192, .dest = 6});
        ASSERT_EQ(::mmap(m, 8192, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), m);
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = 8192, .dest = 6});
        auto [code, what] = error_of([&] {
            for (int i = 0; i < 2000 && t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
        EXPECT_EQ(code, k_err) << what;
        EXPECT_NE(what.find(prot == PROT_READ ? "no longer writable" : "no longer"), std::string::npos) << what;
        EXPECT_NE(what.find("when its data came"), std::string::npos) << what;
        // The stream goes on: the next write on the dest gets the next data, not the dropped bytes.
        std::vector<uint8_t> sink(64, 0);
        src[0] = 0x11;
        t.clearCompleted();
        t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src, .len = 64, .dest = 6});
        t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = sink.data(), .len = 64, .dest = 6});
        ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
        EXPECT_EQ(sink[0], 0x11);
        EXPECT_EQ(sink[63], 0x5a);
        ::munmap(m, 8192);
        src[0] = 0x5a;
    }
}

TEST_F(SimDataPath, CardCapacityIsEnforced) {
    EnvGuard s("COYOTE_SIM_SHELL", "card_capacity=4M");
    cThread t(0, getpid(), 8);
    const uint32_t n = 6u << 20;
    auto* a = t.getMem({CoyoteAllocType::HPF, n});
    auto [code, what] = error_of([&] { t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = a, .len = n}); });
    EXPECT_EQ(code, static_cast<int>(Errc::resource_exhausted)) << what;
    EXPECT_NE(what.find("card_capacity"), std::string::npos) << what;
    EXPECT_NO_THROW(t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = a, .len = 4u << 20}));
}

}  // namespace
