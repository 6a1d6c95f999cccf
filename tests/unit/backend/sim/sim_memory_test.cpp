// The sim vFPGA's memory bounds as the cThread API reaches them: ranges that run past a getMem buffer, userUnmap of
// mappings that overlap others.
#include "unit/test_support.hpp"
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using coyote::CoyoteAllocType;
using coyote::CoyoteOper;
using coyote::cThread;
using coyote::Errc;
using coyote::localSg;
using coyote::syncSg;

using coyote_test::error_of;
using coyote_test::wait_completed;

namespace {

class SimMemory : public coyote_test::SimTest {};

constexpr int k_inval = static_cast<int>(Errc::invalid_argument);

/// A getMem REG buffer of `size` bytes with writable memory of ours right after its last page (so that a range
/// running past the buffer reaches valid process memory, which the page-fault path would map).
struct BufferWithNeighbour {
    char* buf = nullptr;
    char* next = nullptr;
    size_t next_len = 4 * 4096;
    BufferWithNeighbour(cThread& t, uint32_t size) {
        // Reserve the buffer's pages and the neighbour, give the buffer's pages back: the kernel places the next
        // mapping of that size in the highest hole that fits: this one once the buffers of the tries before filled the
        // holes above it (they stay allocated until the cThread goes).
        const size_t pages = (size + 4095) / 4096 * 4096;
        for (int i = 0; i < 64 && next == nullptr; ++i) {
            auto* r = static_cast<char*>(
                ::mmap(nullptr, pages + next_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
            if (r == MAP_FAILED) return;
            ::munmap(r, pages);
            buf = static_cast<char*>(t.getMem({CoyoteAllocType::REG, size}));
            if (buf == r) {
                next = r + pages;
            } else {
                ::munmap(r + pages, next_len);
            }
        }
        if (next != nullptr) std::memset(next, 0x5a, next_len);
    }
    ~BufferWithNeighbour() {
        if (next != nullptr) ::munmap(next, next_len);
    }
    bool neighbour_untouched() const {
        for (size_t i = 0; i < next_len; ++i)
            if (static_cast<unsigned char>(next[i]) != 0x5a) return false;
        return true;
    }
};

TEST_F(SimMemory, ARangeRunningPastItsGetMemBufferIsRefusedAndTheNeighbourKept) {
    cThread t(0, getpid(), 0);
    BufferWithNeighbour b(t, 8192);
    ASSERT_NE(b.next, nullptr) << "no free address after a getMem buffer in 64 tries";
    std::memset(b.buf, 7, 8192);
    auto expect_refused = [&](const char* what, auto&& post) {
        auto [code, msg] = error_of(post);
        EXPECT_EQ(code, k_inval) << what << ": " << msg;
        EXPECT_NE(msg.find("past the end of its getMem buffer"), std::string::npos) << what << ": " << msg;
        EXPECT_NE(msg.find("8192 bytes"), std::string::npos) << what << ": " << msg;
    };
    expect_refused("LOCAL_WRITE",
                   [&] { t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = b.buf + 8000, .len = 4096}); });
    expect_refused("LOCAL_TRANSFER destination", [&] {
        t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = b.buf, .len = 4096},
                 localSg{.addr = b.buf + 8000, .len = 4096});
    });
    expect_refused("LOCAL_READ", [&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = b.buf + 4096, .len = 8192}); });
    expect_refused("LOCAL_SYNC", [&] { t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = b.buf + 100, .len = 8192}); });
    EXPECT_TRUE(b.neighbour_untouched()) << "a command wrote past the getMem buffer";
    // Up to the buffer's last byte, and the neighbour on its own, are fine.
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = b.next, .len = 64}, localSg{.addr = b.buf + 8128, .len = 64});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1));
    EXPECT_EQ(static_cast<unsigned char>(b.buf[8191]), 0x5a);
}

TEST_F(SimMemory, ARangeUpToTheEndOfTheLastPageOfAGetMemBufferIsAccepted) {
    // getMem maps whole pages, as the driver does: a 64-byte rounded transfer of a 1000-byte buffer stays in them.
    cThread t(0, getpid(), 0);
    auto* buf = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 1000}));
    std::memset(buf, 3, 1000);
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_TRANSFER, localSg{.addr = buf, .len = 1024}, localSg{.addr = buf + 2048, .len = 1024});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1));
    EXPECT_EQ(buf[2048 + 999], 3);
    EXPECT_EQ(error_of([&] { t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = buf + 4000, .len = 97}); }).first,
              k_inval);
}

TEST_F(SimMemory, UserUnmapOfAMappingOverAGetMemBufferLeavesTheBuffersWritesAndCardMemory) {
    cThread t(0, getpid(), 0);
    const uint32_t n = 1 << 20;
    auto* buf = static_cast<char*>(t.getMem({CoyoteAllocType::HPF, n}));
    std::memset(buf, 7, n);
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = buf, .len = n});
    t.userMap(buf + 4096, 4096); // a porting habit: map what getMem already mapped
    t.clearCompleted();
    t.invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = buf + 4096, .len = 64, .dest = 3}); // waits for its data
    t.userUnmap(buf + 4096);
    std::vector<char> src(64, 5);
    t.invoke(CoyoteOper::LOCAL_READ, localSg{.addr = src.data(), .len = 64, .dest = 3});
    ASSERT_TRUE(wait_completed(t, CoyoteOper::LOCAL_WRITE, 1));
    EXPECT_EQ(buf[4096], 5) << "the pending write into the getMem buffer was dropped";
    EXPECT_EQ(error_of([&] { (void)t.checkCompleted(CoyoteOper::LOCAL_WRITE); }).first, 0);
    std::memset(buf, 0, n);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = buf, .len = n});
    size_t lost = 0;
    for (uint32_t i = 0; i < n; ++i) lost += buf[i] != 7;
    EXPECT_EQ(lost, 0u) << "card memory of the getMem buffer was released by userUnmap";
}

TEST_F(SimMemory, UserUnmapOfOverlappingMappingsReleasesOnlyWhatNoMappingHolds) {
    cThread t(0, getpid(), 0);
    const size_t n = 4 * 4096;
    auto* m = static_cast<char*>(::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(m, MAP_FAILED);
    t.userMap(m, 2 * 4096);
    t.userMap(m + 4096, 2 * 4096); // overlaps the first one's second page
    std::memset(m, 9, 3 * 4096);
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = m, .len = 3 * 4096});
    t.userUnmap(m + 4096);
    std::memset(m, 0, 3 * 4096);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = m, .len = 2 * 4096});
    size_t lost = 0;
    for (size_t i = 0; i < 2 * 4096; ++i) lost += m[i] != 9;
    EXPECT_EQ(lost, 0u) << "card memory of a page the first userMap still holds was released";
    // The other order: the first mapping goes, its page the second one asked for stays (with its card memory).
    t.userMap(m + 4096, 2 * 4096);
    std::memset(m, 8, 3 * 4096);
    t.invoke(CoyoteOper::LOCAL_OFFLOAD, syncSg{.addr = m, .len = 3 * 4096});
    t.userUnmap(m);
    std::memset(m, 0, 3 * 4096);
    t.invoke(CoyoteOper::LOCAL_SYNC, syncSg{.addr = m + 4096, .len = 2 * 4096});
    lost = 0;
    for (size_t i = 4096; i < 3 * 4096; ++i) lost += m[i] != 8;
    EXPECT_EQ(lost, 0u) << "card memory of a page the second userMap still holds was released";
    t.userUnmap(m + 4096);
    ::munmap(m, n);
}

TEST_F(SimMemory, ARemoteBufferLargerThanDevShmHasRoomForIsAnErrorNotABusError) {
    // Remote buffers live in /dev/shm, a tmpfs that containers often size at 64 MiB. A child process sees its own
    // 16 MiB /dev/shm (a mount namespace: root only) and asks for a 64 MiB remote buffer, then touches it all.
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a mount namespace with a small /dev/shm";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16m") != 0)
            ::_exit(3);
        try {
            cThread t(0, getpid(), 0);
            auto* p = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 64u << 20, true}));
            std::memset(p, 1, 64u << 20); // the old code got here and died of SIGBUS
            ::_exit(4);
        } catch (const coyote::Error& e) {
            const std::string what = e.what();
            std::fprintf(stderr, "child: %s\n", what.c_str());
            const bool named = what.find("/dev/shm") != std::string::npos &&
                               what.find(std::to_string(64u << 20)) != std::string::npos;
            ::_exit(e.code() == std::errc::no_space_on_device && named ? 0 : 5);
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) GTEST_SKIP() << "no mount namespace here";
    ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "4: the buffer was given and touched; 5: another error (see above)";
}

}  // namespace
