// The signal-safe cleanup registry: SIGTERM / SIGINT leave no /dev/shm file of the process, previous handlers
// are chained, a forked child does not remove its parent's names, and registers its own even when a thread of its
// parent held the registry's lock at the fork.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "detail/cleanup.hpp"
#include "support/child.hpp"

namespace {

/// Names in `dir` containing `part`.
std::vector<std::string> names_with(const std::string& dir, const std::string& part) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (const dirent* e = ::readdir(d))
        if (std::string(e->d_name).find(part) != std::string::npos) out.push_back(e->d_name);
    ::closedir(d);
    return out;
}

/// "coyote-sim.<uid>.<pid>.": the sim segments of process `pid`.
std::string sim_prefix(pid_t pid) {
    return "coyote-sim." + std::to_string(::getuid()) + "." + std::to_string(pid) + ".";
}

/// Forks a process that opens a sim vFPGA, allocates memory, reports ready on a pipe and waits for a signal.
/// Returns its pid; `ready` is false when it failed to start.
pid_t start_sim_process(bool& ready) {
    int p[2];
    if (::pipe(p) != 0) return -1;
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        try {
            ::setenv("COYOTE_BACKEND", "sim", 1);
            coyote::cThread t(0, ::getpid());
            (void)t.getMem({coyote::CoyoteAllocType::HPF, 1u << 20});
            (void)::write(p[1], "r", 1);
            for (;;) ::pause();
        } catch (...) {
            ::_exit(3);
        }
    }
    ::close(p[1]);
    char c = 0;
    ready = ::read(p[0], &c, 1) == 1;
    ::close(p[0]);
    return pid;
}

class SignalCleanup : public testing::TestWithParam<int> {};

}  // namespace

TEST_P(SignalCleanup, LeavesNoShmFileOfThePid) {
    const int sig = GetParam();
    bool ready = false;
    const pid_t pid = start_sim_process(ready);
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(ready) << "the sim process did not start";
    const auto before = names_with("/dev/shm", sim_prefix(pid));
    EXPECT_GE(before.size(), 2u) << "expected the state, NIC and buffer segments of pid " << pid;
    ASSERT_EQ(::kill(pid, sig), 0);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(st)) << "the process should die of the signal, not exit";
    EXPECT_EQ(WTERMSIG(st), sig);
    const auto after = names_with("/dev/shm", sim_prefix(pid));
    EXPECT_TRUE(after.empty()) << after.size() << " files of pid " << pid << " stay in /dev/shm, e.g. " << after[0];
}

INSTANTIATE_TEST_SUITE_P(Signals, SignalCleanup, testing::Values(SIGTERM, SIGINT, SIGHUP));

namespace {
volatile sig_atomic_t g_seen = 0;
void note_signal(int) { g_seen = 1; }
}  // namespace

TEST(Cleanup, APreviousHandlerThatReturnsKeepsTheProcessAndItsSegments) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int rc = 0;
        try {
            ::signal(SIGTERM, &note_signal); // e.g. Python's or an application's handler, installed first
            ::setenv("COYOTE_BACKEND", "sim", 1);
            coyote::cThread t(0, ::getpid());
            ::raise(SIGTERM);
            if (g_seen != 1) rc = 4;                                          // not chained
            else if (names_with("/dev/shm", sim_prefix(::getpid())).empty()) rc = 5; // removed under a live process
        } catch (...) {
            rc = 6;
        }
        ::_exit(rc);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << "4: the previous handler was not called; 5: segments removed while running";
}

TEST(Cleanup, RemovesOnlyTheRegisteredPrefixesOfThisProcess) {
    char tmpl[] = "/tmp/coyote_cleanup_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    const std::string mine = "cleanup-test." + std::to_string(::getpid()) + ".";
    for (const std::string& n : {mine + "a", mine + "b", std::string("other.1"), std::string("cleanup-test.1.x")})
        ::close(::open((dir + "/" + n).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    coyote::detail::unlink_on_signal(mine);
    // A forked child acts on none of its parent's registrations.
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(static_cast<int>(coyote::detail::unlink_registered(dir.c_str())));
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_EQ(WEXITSTATUS(st), 0) << "a forked child removed its parent's names";
    EXPECT_EQ(coyote::detail::unlink_registered(dir.c_str()), 2u);
    EXPECT_EQ(names_with(dir, "cleanup-test." + std::to_string(::getpid())).size(), 0u);
    EXPECT_EQ(names_with(dir, "other.1").size(), 1u);
    EXPECT_EQ(names_with(dir, "cleanup-test.1.x").size(), 1u);
    for (const char* n : {"other.1", "cleanup-test.1.x"}) ::unlink((dir + "/" + n).c_str());
    ::rmdir(dir.c_str());
    EXPECT_THROW(coyote::detail::unlink_on_signal(""), coyote::Error);
    EXPECT_THROW(coyote::detail::unlink_on_signal("a/b"), coyote::Error);
    EXPECT_THROW(coyote::detail::unlink_on_signal(std::string(200, 'x')), coyote::Error);
}

TEST(Cleanup, AChildForkedWhileAThreadRegistersCanRegister) {
    const std::string busy = "cleanup-busy." + std::to_string(::getpid()) + ".";
    coyote::detail::unlink_on_signal(busy);
    std::atomic<bool> stop{false};
    std::thread t([&] { // takes the registry's lock again and again (the prefix is known: nothing is added)
        while (!stop.load()) coyote::detail::unlink_on_signal(busy);
    });
    int hung = 0;
    for (int i = 0; i < 20; ++i) {
        coyote_test::Child child([] {
            coyote::detail::unlink_on_signal("cleanup-child." + std::to_string(::getpid()) + ".");
            return 0;
        }, 10);
        if (child.wait(std::chrono::seconds(20)) != 0) ++hung;
    }
    stop = true;
    t.join();
    EXPECT_EQ(hung, 0) << "children waited for the registry lock a thread of their parent held at the fork";
}
