// Reclaiming stale sim segments, against objects another user (or anyone) put at names of ours: a FIFO at a state
// segment's name does not block the reclaim (which runs when the first device opens), another user's file is neither
// read nor removed. Runs on a private directory standing in for /dev/shm.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "backend/sim/segments.hpp"
#include "support/child.hpp"

namespace {

namespace sim = coyote::detail::sim;

constexpr uid_t k_nobody = 65534;
/// A pid no process has (above any pid_max).
constexpr long k_dead_pid = 2147483000;

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = "/tmp/coyote-segments-test-XXXXXX";
        path = ::mkdtemp(t.data()) != nullptr ? t : std::string();
    }
    ~TempDir() {
        if (!path.empty()) (void)std::system(("rm -rf '" + path + "'").c_str());
    }
};

std::string name_of(long pid, const std::string& rest) {
    return "coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + "." + rest;
}

TEST(ReclaimStaleSegments, AFifoAtAStateNameDoesNotBlock) {
    const TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    // pid 1 runs: the reclaim reads the "state segment" to compare its owner's start time.
    const std::string fifo = dir.path + "/" + name_of(1, "d0v0.state");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    coyote_test::Child child([&] { return static_cast<int>(sim::reclaim_stale_segments(dir.path)); }, 10);
    EXPECT_EQ(child.wait(std::chrono::seconds(20)), 0) << "the reclaim blocked on the FIFO (-1 / 142) or removed it";
    struct stat st {};
    EXPECT_EQ(::lstat(fifo.c_str(), &st), 0) << "a live process's name was removed";
}

TEST(ReclaimStaleSegments, LeavesAnotherUsersFileAlone) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
    const TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string theirs = dir.path + "/" + name_of(k_dead_pid, "d0v0.buf0");
    const std::string mine = dir.path + "/" + name_of(k_dead_pid, "d0v0.buf1");
    for (const std::string& p : {theirs, mine}) {
        const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        ASSERT_GE(fd, 0) << p;
        ::close(fd);
    }
    ASSERT_EQ(::chown(theirs.c_str(), k_nobody, static_cast<gid_t>(-1)), 0);
    EXPECT_EQ(sim::reclaim_stale_segments(dir.path), 1u);
    struct stat st {};
    EXPECT_EQ(::lstat(theirs.c_str(), &st), 0) << "another user's file was removed";
    EXPECT_NE(::lstat(mine.c_str(), &st), 0) << "our leftover of a dead process stayed";
}

}  // namespace
