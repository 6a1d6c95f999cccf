// coyote::mpi::PeerLiveness between two forked processes (no MPI): the pidfd path on one host, the connection path
// when the two claim different hosts, and what each reports when the peer is killed or closes its watch.
#include <coyote/error.hpp>
#include <coyote/mpi/liveness.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

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
    ::setenv("COYOTE_MPI_LIVENESS_PERIOD_MS", "1000", 1);
    Peer peer("host-b", false);
    PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
    ::unsetenv("COYOTE_MPI_LIVENESS_PERIOD_MS");
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
    ::setenv("COYOTE_MPI_LIVENESS_ADDR", "not-an-ip", 1);
    try {
        Peer peer("host-b", true);
        PeerLiveness live(0, 2, pair_allgather(peer.fd, 0), LivenessOptions{.host = "host-a"});
        ADD_FAILURE() << "a bad COYOTE_MPI_LIVENESS_ADDR was accepted";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_MPI_LIVENESS_ADDR"), std::string::npos) << e.what();
    }
    ::unsetenv("COYOTE_MPI_LIVENESS_ADDR");
}
