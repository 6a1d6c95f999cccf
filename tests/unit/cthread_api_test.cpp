// The cThread API's edge cases as a porting user meets them: one cThread shared by several threads (lock / unlock),
// freeMem of what getMem never returned.
#include "unit/test_support.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

using coyote::CoyoteAllocType;
using coyote::cThread;
using coyote::Errc;
using coyote_test::error_of;

namespace {

/// An out-of-band channel whose peer is a cThread of this process: the exchange hands it that cThread's queue pair.
class PeerInProcess final : public coyote::OobChannel {
public:
    explicit PeerInProcess(std::vector<std::byte> theirs) : theirs_(std::move(theirs)) {}
    bool is_client() const noexcept override { return true; }
    std::vector<std::byte> exchange(std::span<const std::byte>) override { return theirs_; }
    void send_ack(uint32_t) override {}
    uint32_t read_ack() override { return 1; }
    void close() noexcept override {}

private:
    std::vector<std::byte> theirs_;
};

class CThreadApi : public coyote_test::SimTest {};

/// The vFPGA lock's semaphore of `device` / vFPGA 0, opened beside the runtime (to read its value).
sem_t* open_lock_semaphore(uint32_t device) {
    const std::string name = "/coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(device) + "_v0";
    return ::sem_open(name.c_str(), 0);
}

TEST_F(CThreadApi, TwoThreadsUnlockingOneCThreadReleaseItsLockOnce) {
    // A cThread shared by threads: both unlock() at once after one lock(). The lock is released once (as Coyote's
    // lock_acquired flag has it), never posted twice, which would let two holders in from then on.
    constexpr uint32_t k_device = 41; // a lock of its own
    cThread t(0, getpid(), k_device);
    sem_t* sem = open_lock_semaphore(k_device);
    ASSERT_NE(sem, SEM_FAILED);
    int over = 0;
    for (int round = 0; round < 3000 && over == 0; ++round) {
        t.lock();
        std::atomic<int> ready{0};
        auto unlocker = [&] {
            ready.fetch_add(1);
            while (ready.load() < 2) {
            }
            t.unlock();
        };
        std::thread a(unlocker), b(unlocker);
        a.join();
        b.join();
        int value = 0;
        ASSERT_EQ(::sem_getvalue(sem, &value), 0);
        if (value > 1) {
            over = round + 1;
            while (value-- > 1) ::sem_trywait(sem); // give the other tests a sane lock back
        }
    }
    ::sem_close(sem);
    EXPECT_EQ(over, 0) << "in round " << over << " the lock's semaphore was posted twice";
}

TEST_F(CThreadApi, TwoThreadsLockingOneCThreadEachGetTheLock) {
    // Both lock() at once: one takes it, the other waits for it (it does not wait for itself until the timeout).
    constexpr uint32_t k_device = 42;
    cThread t(0, getpid(), k_device);
    for (int round = 0; round < 200; ++round) {
        std::atomic<int> ready{0};
        auto locker = [&] {
            ready.fetch_add(1);
            while (ready.load() < 2) {
            }
            t.lock();
            t.unlock();
        };
        std::thread a(locker), b(locker);
        a.join();
        b.join();
    }
    t.lock(); // free again
    t.unlock();
}

TEST_F(CThreadApi, FreeMemOfNullIsANoOpAndOfAnythingElseNotFromGetMemAnError) {
    // Coyote's getMem returns null where it cannot allocate, and its freeMem ignores what it does not know: cleanup
    // code that frees a null pointer works there, and does here. Other pointers getMem never returned (a double
    // free, an interior pointer, userMap memory) are errors naming the pointer.
    cThread t(0, getpid(), 0);
    EXPECT_EQ(error_of([&] { t.freeMem(nullptr); }).first, 0);
    auto* p = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096}));
    auto [c1, w1] = error_of([&] { t.freeMem(p + 8); });
    EXPECT_EQ(c1, static_cast<int>(Errc::not_mapped)) << w1;
    t.freeMem(p);
    auto [c2, w2] = error_of([&] { t.freeMem(p); });
    EXPECT_EQ(c2, static_cast<int>(Errc::not_mapped)) << w2;
    EXPECT_NE(w2.find("freeMem"), std::string::npos) << w2;
}

TEST_F(CThreadApi, InitRdmaLeavesARemoteBufferOfAnotherSizeToItsOwner) {
    // A port that made its queue pair buffer with getMem(remote = true) and then calls initRDMA with another size:
    // initRDMA makes a new buffer (as Coyote's always does); the caller's stays allocated until it frees it.
    cThread peer(0, getpid(), 0);
    (void)peer.getMem({CoyoteAllocType::HPF, 8192, true});
    cThread t(0, getpid(), 0);
    auto* mine = static_cast<char*>(t.getMem({CoyoteAllocType::REG, 4096, true}));
    std::memset(mine, 1, 4096);
    void* buf = t.initRDMA(8192, std::make_unique<PeerInProcess>(peer.exportQp()));
    EXPECT_NE(buf, mine);
    EXPECT_EQ(t.getQpair()->local.vaddr, buf);
    EXPECT_EQ(t.getQpair()->local.size, 8192u);
    auto [code, what] = error_of([&] { t.freeMem(mine); }); // the old code had freed (unmapped) it behind our back
    EXPECT_EQ(code, 0) << what;
    // The same size reuses the registered buffer.
    EXPECT_EQ(t.initRDMA(8192, std::make_unique<PeerInProcess>(peer.exportQp())), buf);
}

}  // namespace
