// coyote::mpi::PeerLiveness between two forked processes (no MPI): the pidfd path on one host, the connection path
// when the two claim different hosts, and what each reports when the peer is killed or closes its watch.
#include <coyote/error.hpp>
#include <coyote/mpi/liveness.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support/env_guard.hpp"
#include "support/netns_pair.hpp"

using coyote::mpi::LivenessOptions;
using coyote::mpi::LivenessRecord;
using coyote::mpi::PeerLiveness;
using namespace std::chrono_literals;

namespace {

/// A two-rank allgather over one end of a socketpair.
PeerLiveness::Allgather pair_allgather(int fd, int rank) {
    return [fd, rank](const LivenessRecord& mine) {
        std::vector<LivenessRecord> all(2);
        all[static_cast<std::size_t>(rank)] = mine;
        if (::write(fd, &mine, sizeof(mine)) != static_cast<ssize_t>(sizeof(mine))) std::abort();
        if (::recv(fd, &all[static_cast<std::size_t>(1 - rank)], sizeof(mine), MSG_WAITALL) !=
            static_cast<ssize_t>(sizeof(mine)))
            std::abort();
        return all;
    };
}

/// Rank 1 in a child: sets up its watch (claiming `host`), says "ready", then either waits to be killed or, with
/// `close_watch`, drops its watch and says "closed" while it lives on.
struct Peer {
    pid_t pid = -1;
    int fd = -1;
    Peer(const std::string& host, bool close_watch) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
        pid = ::fork();
        if (pid == 0) {
            ::close(sv[0]);
            try {
                PeerLiveness live(1, 2, pair_allgather(sv[1], 1), LivenessOptions{.host = host});
                if (::write(sv[1], "r", 1) != 1) ::_exit(2);
                if (!close_watch) ::pause();
            } catch (...) {
                ::_exit(3);
            }
            if (::write(sv[1], "c", 1) != 1) ::_exit(2);
            ::sleep(30);
            ::_exit(0);
        }
        ::close(sv[1]);
        fd = sv[0];
    }
    char next() const {
        char c = 0;
        return ::read(fd, &c, 1) == 1 ? c : '\0';
    }
    ~Peer() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        ::close(fd);
    }
};

/// Kills `peer` and measures how long `live` takes to name it.
void expect_detects_kill(PeerLiveness& live, Peer& peer, const std::string& reason_part) {
    EXPECT_EQ(live.poll(200ms), -1) << "a live peer was reported gone";
    EXPECT_FALSE(live.gone(1));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(peer.pid, SIGKILL), 0);
    EXPECT_EQ(live.poll(5000ms), 1);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_LT(ms.count(), 1000) << "the death took " << ms.count() << " ms to show";
    EXPECT_TRUE(live.gone(1));
    EXPECT_NE(live.reason(1).find(reason_part), std::string::npos) << live.reason(1);
    EXPECT_EQ(live.poll(0ms), -1) << "a death is reported once";
}

}  // namespace

TEST(PeerLiveness, SameHostPeerIsWatchedThroughItsProcess) {
    Peer peer("", false);
    PeerLiveness live(0, 2, pair_allgather(peer.fd, 0));
    ASSERT_EQ(peer.next(), 'r');
    EXPECT_EQ(live.method(0), PeerLiveness::Method::self);
    ASSERT_EQ(live.method(1), PeerLiveness::Method::process);
    expect_detects_kill(live, peer, "its process " + std::to_string(peer.pid) + " on this host exited");
}

// The pid check cannot apply across hosts: only the connection can tell.
TEST(PeerLiveness, PeerOnAnotherHostIsWatchedThroughAConnection) {
    Peer peer("host-b", false);
    PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
    ASSERT_EQ(peer.next(), 'r');
    ASSERT_EQ(live.method(1), PeerLiveness::Method::connection);
    expect_detects_kill(live, peer, "its liveness connection to host host-b");
}

// A rank that tears its watch down (e.g. its collectives object after a failed call) is gone for the others
// on another host, although its process lives on; the same on the connecting side (rank 0 here connects).
TEST(PeerLiveness, ClosedWatchOnAnotherHostCountsAsGone) {
    Peer peer("host-b", true);
    PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
    ASSERT_EQ(peer.next(), 'r');
    ASSERT_EQ(peer.next(), 'c');
    EXPECT_EQ(live.poll(5000ms), 1);
    EXPECT_NE(live.reason(1).find("closed"), std::string::npos) << live.reason(1);
    EXPECT_EQ(::kill(peer.pid, 0), 0) << "the peer process should still run";
}

// check() looks at most once per period: the first call after a death finds it, calls in between return at once.
TEST(PeerLiveness, CheckIsRateLimitedAndFindsTheDeath) {
    coyote_test::EnvGuard period("COYOTE_MPI_LIVENESS_PERIOD_MS", "1000");
    Peer peer("host-b", false);
    PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
    ASSERT_EQ(peer.next(), 'r');
    EXPECT_EQ(live.check(), -1);
    ASSERT_EQ(::kill(peer.pid, SIGKILL), 0);
    ::waitpid(peer.pid, nullptr, 0);
    peer.pid = -1;
    std::this_thread::sleep_for(20ms); // the FIN has arrived; the period has not passed
    EXPECT_EQ(live.check(), -1) << "check() looked before its period was over";
    EXPECT_FALSE(live.gone(1));
    std::this_thread::sleep_for(1100ms);
    EXPECT_EQ(live.check(), 1);
    EXPECT_TRUE(live.gone(1));
}

TEST(PeerLiveness, BadAddressIsAClearError) {
    coyote_test::EnvGuard addr("COYOTE_MPI_LIVENESS_ADDR", "not-an-ip");
    try {
        Peer peer("host-b", true);
        PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
        ADD_FAILURE() << "a bad COYOTE_MPI_LIVENESS_ADDR was accepted";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_MPI_LIVENESS_ADDR"), std::string::npos) << e.what();
    }
}

namespace {

/// In a forked child: into network namespace `ns` with its own host name, the liveness listener on `ip`.
void become_host(const std::string& ns, const std::string& name, const std::string& ip) {
    coyote_test::NetnsPair::enter(ns);
    if (::unshare(CLONE_NEWUTS) != 0 || ::sethostname(name.c_str(), name.size()) != 0) ::_exit(20);
    ::setenv("COYOTE_MPI_LIVENESS_ADDR", ip.c_str(), 1);
}

}  // namespace

// Two "hosts" as real as one machine allows: separate network namespaces joined by a veth pair, separate host
// names, listeners on the veth addresses, no claimed host: the pid check cannot apply and the connection tells.
TEST(PeerLiveness, AcrossNetworkNamespacesTheConnectionDetectsTheDeath) {
    coyote_test::NetnsPair ns;
    if (!ns.ok()) GTEST_SKIP() << "network namespaces unavailable: " << ns.why();
    int sv[2], ctl[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(::pipe(ctl), 0);
    const pid_t b = ::fork();
    if (b == 0) {
        become_host(ns.b(), "cy-live-b", ns.ip_b());
        try {
            PeerLiveness live(1, 2, pair_allgather(sv[1], 1));
            ::pause();
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    const pid_t a = ::fork();
    if (a == 0) { // rank 0: exit code 0 when it saw rank 1 alive, then gone through the connection
        become_host(ns.a(), "cy-live-a", ns.ip_a());
        try {
            PeerLiveness live(0, 2, pair_allgather(sv[0], 0));
            if (live.method(1) != PeerLiveness::Method::connection) ::_exit(10);
            if (live.poll(200ms) != -1) ::_exit(11);
            if (::write(ctl[1], "r", 1) != 1) ::_exit(2);
            if (live.poll(10000ms) != 1) ::_exit(12);
            if (live.reason(1).find("its liveness connection to host cy-live-b") == std::string::npos) ::_exit(13);
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    char c = 0;
    const bool ready = ::read(ctl[0], &c, 1) == 1;
    const auto t0 = std::chrono::steady_clock::now();
    ::kill(b, SIGKILL);
    int st = 0;
    ::waitpid(a, &st, 0);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    ::waitpid(b, nullptr, 0);
    for (int fd : {sv[0], sv[1], ctl[0], ctl[1]}) ::close(fd);
    ASSERT_TRUE(ready) << "rank 0 did not get ready (exit status " << st << ")";
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << "10: not watched by connection, 11: a live peer reported, 12: death not seen, "
                                     "13: wrong reason, 3: set-up failed";
    EXPECT_LT(ms.count(), 2000) << "the death took " << ms.count() << " ms to show";
    std::printf("death seen across namespaces after %lld ms\n", static_cast<long long>(ms.count()));
}
