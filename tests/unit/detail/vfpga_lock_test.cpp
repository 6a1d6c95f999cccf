// The per-user vFPGA lock in /dev/shm: owner-only whatever the umask; a semaphore or holders file another user put
// at its names is refused, naming it (he could hold the vFPGA, or post the semaphore to let two holders in).
// Device numbers no other test uses (the names are per user, and tests of other builds may run as the same user).
#include <gtest/gtest.h>

#include <coyote/error.hpp>

#include <fcntl.h>
#include <semaphore.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "detail/vfpga_lock.hpp"

namespace {

using coyote::detail::VfpgaLock;

constexpr uid_t k_nobody = 65534;

std::string lock_name(uint32_t device, int32_t vfid) {
    return "coyote_vlock_u" + std::to_string(::getuid()) + "_d" + std::to_string(device) + "_v" + std::to_string(vfid);
}

std::string error_text(uint32_t device, int32_t vfid) {
    try {
        VfpgaLock lock(device, vfid);
    } catch (const coyote::Error& e) {
        return e.what();
    }
    return {};
}

TEST(VfpgaLock, ItsFilesAreOwnerOnlyWhateverTheUmask) {
    const mode_t old = ::umask(0);
    {
        VfpgaLock lock(241, 1);
        ::umask(old);
        for (const std::string& path : {"/dev/shm/sem." + lock_name(241, 1), "/dev/shm/" + lock_name(241, 1) + ".holders"}) {
            struct stat st {};
            ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
            EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
        }
    }
    ::umask(old);
}

TEST(VfpgaLock, RefusesASemaphoreOfAnotherUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a semaphore to another user";
    const std::string name = lock_name(242, 3);
    const std::string path = "/dev/shm/sem." + name;
    const mode_t old = ::umask(0);
    sem_t* sem = ::sem_open(("/" + name).c_str(), O_CREAT | O_EXCL, 0666, 1);
    ::umask(old);
    ASSERT_NE(sem, SEM_FAILED) << path;
    ASSERT_EQ(::chown(path.c_str(), k_nobody, static_cast<gid_t>(-1)), 0);
    const std::string msg = error_text(242, 3);
    struct stat holders {};
    const bool holders_left = ::stat(("/dev/shm/" + name + ".holders").c_str(), &holders) == 0;
    struct stat st {};
    const bool kept = ::stat(path.c_str(), &st) == 0 && st.st_uid == k_nobody;
    ::sem_close(sem);
    ::sem_unlink(("/" + name).c_str());
    (void)::unlink(("/dev/shm/" + name + ".holders").c_str());
    EXPECT_NE(msg.find("belongs to uid 65534"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_TRUE(kept) << "the other user's semaphore was removed or changed";
    EXPECT_FALSE(holders_left) << "the refused lock left its holders file";
}

TEST(VfpgaLock, RefusesAHoldersFileOfAnotherUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
    const std::string path = "/dev/shm/" + lock_name(243, 0) + ".holders";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::fchown(fd, k_nobody, static_cast<gid_t>(-1)), 0);
    ::close(fd);
    const std::string msg = error_text(243, 0);
    (void)::unlink(path.c_str());
    EXPECT_NE(msg.find("belongs to uid 65534"), std::string::npos) << msg;
}

TEST(VfpgaLock, RefusesASymbolicLinkAtTheHoldersName) {
    const std::string path = "/dev/shm/" + lock_name(244, 0) + ".holders";
    const std::string target = "/tmp/coyote-vlock-test-target-" + std::to_string(::getpid());
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
    const std::string msg = error_text(244, 0);
    (void)::unlink(path.c_str());
    struct stat st {};
    EXPECT_NE(::stat(target.c_str(), &st), 0) << "the link's target was created";
    (void)::unlink(target.c_str());
    EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
}

}  // namespace
