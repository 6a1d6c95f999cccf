// The cThread API's edge cases as a porting user meets them: one cThread shared by several threads (lock / unlock),
// freeMem of what getMem never returned.
#include "unit/test_support.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <unistd.h>

#include <coyote/cThread.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

using coyote::CoyoteAllocType;
using coyote::cThread;
using coyote::Errc;
using coyote_test::error_of;

namespace {

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

}  // namespace
