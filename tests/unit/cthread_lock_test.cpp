// The vFPGA lock: private to its user (mode 0600, the user id in its name), exclusive across cThreads.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <coyote/cThread.hpp>

#include "unit/test_support.hpp"

using coyote_test::EnvGuard;
using coyote_test::error_of;

namespace {

std::string lock_file(uint32_t device, int vfid) {
    return "/dev/shm/sem.coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(device) + "_v" +
           std::to_string(vfid);
}

}  // namespace

TEST(CThreadLock, LockIsPrivateToItsUser) {
    EnvGuard b("COYOTE_BACKEND", "sim");
    coyote::cThread t(0, ::getpid(), 5);
    t.lock();
    struct stat st {};
    ASSERT_EQ(::stat(lock_file(5, 0).c_str(), &st), 0) << lock_file(5, 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::getuid());
    t.unlock();
}

TEST(CThreadLock, SecondHolderTimesOutNamingTheLock) {
    EnvGuard b("COYOTE_BACKEND", "sim"), timeout("COYOTE_LOCK_TIMEOUT_MS", "50");
    coyote::cThread a(0, ::getpid(), 5);
    coyote::cThread c(0, ::getpid(), 5);
    a.lock();
    const auto t0 = std::chrono::steady_clock::now();
    auto [code, what] = error_of([&] { c.lock(); });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::timeout)) << what;
    EXPECT_NE(what.find("coyote_vlock_u" + std::to_string(::getuid())), std::string::npos) << what;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    a.unlock();
    c.lock();  // free again
    c.unlock();
}
