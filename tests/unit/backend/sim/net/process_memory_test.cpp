// Cross-process memory permission of the sim NIC: the narrowest Yama ptracer declaration (the nearest common
// ancestor of the peers), none where Yama is absent; an unrelated process of the same user cannot read us.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "backend/sim/net/process_memory.hpp"

namespace net = coyote::detail::sim::net;

namespace {

// 1 -> 10 -> {20 -> {30, 31}, 21 -> 40}
std::map<pid_t, pid_t> g_tree = {{10, 1}, {20, 10}, {21, 10}, {30, 20}, {31, 20}, {40, 21}, {1, 0}};
pid_t tree_parent(pid_t p) {
    const auto it = g_tree.find(p);
    return it == g_tree.end() ? 0 : it->second;
}
pid_t cyclic_parent(pid_t p) { return p == 5 ? 6 : 5; }

}  // namespace

TEST(ProcessMemory, CommonAncestorIsTheNearestOne) {
    EXPECT_EQ(net::common_ancestor(30, 31, &tree_parent), 20);
    EXPECT_EQ(net::common_ancestor(30, 40, &tree_parent), 10);
    EXPECT_EQ(net::common_ancestor(20, 30, &tree_parent), 20); // an ancestor of the other
    EXPECT_EQ(net::common_ancestor(30, 30, &tree_parent), 30);
    EXPECT_EQ(net::common_ancestor(30, 99, &tree_parent), 0);  // unknown: no declaration
    EXPECT_EQ(net::common_ancestor(5, 7, &cyclic_parent), 5);  // a cycle ends the walk
}

TEST(ProcessMemory, ParentPidComesFromProc) {
    EXPECT_EQ(net::parent_pid(::getpid()), ::getppid());
    EXPECT_EQ(net::parent_pid(0), 0);
}

TEST(ProcessMemory, NoPtracerDeclarationWithoutYamaScopeOne) {
    if (net::yama_ptrace_scope() == 1) GTEST_SKIP() << "Yama ptrace_scope is 1 here (see the next test)";
    // Yama absent or at scope 0: same-user ptrace rules already let peers copy; nothing is declared.
    EXPECT_EQ(net::allow_peer_access(::getppid()), 0);
}

TEST(ProcessMemory, UnrelatedProcessCannotReadUsUnderYama) {
    if (net::yama_ptrace_scope() != 1)
        GTEST_SKIP() << "Yama ptrace_scope is " << net::yama_ptrace_scope() << " here (not 1): not testable";
    // A peer forked by us is allowed (declared: our own pid, the common ancestor)...
    static char secret[64] = "secret";
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    const pid_t me = ::getpid();
    const pid_t peer = ::fork();
    if (peer == 0) ::pause();
    EXPECT_NE(net::allow_peer_access(peer), 0);
    // ...an orphan (double fork: reparented away from us) of the same user is not.
    const pid_t mid = ::fork();
    if (mid == 0) {
        if (::fork() == 0) {
            ::usleep(200000); // reparented by now
            char buf[64];
            iovec l{buf, sizeof(buf)}, r{secret, sizeof(secret)};
            const ssize_t n = ::process_vm_readv(me, &l, 1, &r, 1, 0);
            const char verdict = n < 0 ? 'D' : 'R';
            (void)::write(p[1], &verdict, 1);
            ::_exit(0);
        }
        ::_exit(0);
    }
    ::close(p[1]);
    int st = 0;
    ::waitpid(mid, &st, 0);
    char verdict = 0;
    ASSERT_EQ(::read(p[0], &verdict, 1), 1);
    EXPECT_EQ(verdict, 'D') << "an unrelated process of the same user read this process's memory";
    ::kill(peer, SIGKILL);
    ::waitpid(peer, &st, 0);
}

