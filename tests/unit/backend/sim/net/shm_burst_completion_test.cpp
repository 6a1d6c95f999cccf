// Completions of WRITE bursts on the shm wire between two sim processes. The first WRITE of a burst is counted at
// the target at once; the target counts the later ones when the initiator polls next or when its own poller claims
// them. These tests check what a program sees of that: a target never waits for an initiator that stops polling,
// a single check after an out-of-band sync sees the whole burst, clearCompleted drops what landed before it, and
// counts stay exact while the target polls in the middle of bursts (also when its poller sleeps).
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Peer;

namespace {

constexpr uint64_t k_buf = 1 << 16;
constexpr uint32_t k_msg = 256;

void shm_env() { coyote_test::child_env("shm"); }

/// A tight checkCompleted(LOCAL_WRITE) loop until `n`, with a deadline; returns the count it saw last.
uint32_t spin_until(coyote::cThread& t, uint32_t n, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    uint32_t got = 0;
    for (unsigned spins = 1; (got = t.checkCompleted(CoyoteOper::LOCAL_WRITE)) < n; ++spins)
        if ((spins & 0x3FFu) == 0 && std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error(what + ": " + std::to_string(got) + " of " + std::to_string(n) +
                                     " LOCAL_WRITE completions after 20 s");
    return got;
}

/// `n` WRITEs of k_msg bytes, message i from offset i * k_msg (pattern `seed`) to the same offset at the peer.
void write_burst(Peer& p, uint32_t first, uint32_t n, unsigned seed) {
    for (uint32_t i = first; i < first + n; ++i) {
        const uint64_t off = (i * k_msg) % k_buf;
        coyote_test::fill(p.buf + off, k_msg, seed, i);
        p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = off, .remote_offs = off, .len = k_msg});
    }
}

/// Checks that message i of a burst arrived whole at `buf` (see write_burst).
void check_burst(const uint8_t* buf, uint32_t first, uint32_t n, unsigned seed, const std::string& what) {
    for (uint32_t i = first; i < first + n; ++i) {
        const uint64_t off = (i * k_msg) % k_buf;
        const int64_t bad = coyote_test::mismatch(buf + off, 0, k_msg, seed, i);
        check(bad < 0, what + ": message " + std::to_string(i) + " differs at byte " + std::to_string(bad));
    }
}

}  // namespace

TEST(ShmBurstCompletion, TheTargetSeesABurstWhoseInitiatorNeverPollsAgain) {
    constexpr uint32_t n = 32;
    coyote_test::run_pair(
        shm_env, k_buf,
        [](Peer& p) {
            p.sync();
            // The client blocks in the next sync until this loop is done: only this side's polls can count the burst.
            check(spin_until(p.t, n, "server") == n, "exactly the burst");
            check_burst(p.buf, 0, n, 21, "server");
            p.sync();
        },
        [](Peer& p) {
            p.sync();
            write_burst(p, 0, n, 21);
            p.sync();
        });
}

TEST(ShmBurstCompletion, OneCheckAfterAnOutOfBandSyncSeesTheWholeBurst) {
    constexpr uint32_t n = 32;
    coyote_test::run_pair(
        shm_env, k_buf,
        [](Peer& p) {
            p.sync(); // both queue pairs are written
            for (int round = 1; round <= 3; ++round) {
                p.sync(); // the client posted its burst (and did not poll) before this sync
                const uint32_t got = p.t.checkCompleted(CoyoteOper::LOCAL_WRITE);
                check(got == n * static_cast<uint32_t>(round),
                      "round " + std::to_string(round) + ": one checkCompleted after the sync saw " +
                          std::to_string(got) + " of " + std::to_string(n * static_cast<uint32_t>(round)));
                p.sync(); // the client posts its next burst only after this check
            }
        },
        [](Peer& p) {
            p.sync();
            for (uint32_t round = 0; round < 3; ++round) {
                write_burst(p, round * n, n, 22);
                p.sync();
                p.sync();
            }
        });
}

TEST(ShmBurstCompletion, ClearCompletedDropsWhatLandedBeforeIt) {
    coyote_test::run_pair(
        shm_env, k_buf,
        [](Peer& p) {
            p.sync(); // both queue pairs are written
            p.sync(); // 20 WRITEs landed, none polled for
            p.t.clearCompleted();
            check(p.t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0, "counters cleared after the burst landed");
            p.sync();
            p.sync(); // 5 more, the same burst for the client (it has not polled since)
            const uint32_t got = p.t.checkCompleted(CoyoteOper::LOCAL_WRITE);
            check(got == 5, "after the clear: " + std::to_string(got) + " completions, expected the 5 new ones");
            check_burst(p.buf, 20, 5, 23, "server");
            p.sync();
        },
        [](Peer& p) {
            p.sync();
            write_burst(p, 0, 20, 23);
            p.sync();
            p.sync();
            write_burst(p, 20, 5, 23);
            p.sync();
            p.sync();
        });
}

TEST(ShmBurstCompletion, CountsStayExactWhileTheTargetPollsInTheMiddleOfBursts) {
    constexpr uint32_t total = 4000;
    for (const char* spin : {"auto", "0"}) { // "0": the target's poller sleeps after 128 idle polls
        SCOPED_TRACE(std::string("COYOTE_SIM_POLL_SPIN_US=") + spin);
        coyote_test::run_pair(
            [spin] {
                shm_env();
                if (std::string(spin) != "auto") ::setenv("COYOTE_SIM_POLL_SPIN_US", spin, 1);
            },
            k_buf,
            [](Peer& p) {
                p.sync();
                uint32_t last = 0;
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
                while (last < total) {
                    const uint32_t got = p.t.checkCompleted(CoyoteOper::LOCAL_WRITE);
                    check(got >= last, "the counter went back from " + std::to_string(last));
                    check(got <= total, "counted " + std::to_string(got) + " of " + std::to_string(total) + " WRITEs");
                    check(std::chrono::steady_clock::now() < deadline,
                          "only " + std::to_string(got) + " of " + std::to_string(total) + " after 60 s");
                    last = got;
                }
                p.sync();
                check(p.t.checkCompleted(CoyoteOper::LOCAL_WRITE) == total, "exactly the WRITEs posted");
            },
            [](Peer& p) {
                p.sync();
                std::mt19937 rng(17);
                for (uint32_t sent = 0; sent < total;) {
                    const uint32_t burst = std::uniform_int_distribution<uint32_t>(1, 64)(rng);
                    const uint32_t n = std::min(total - sent, burst);
                    write_burst(p, sent, n, 24);
                    sent += n;
                    // Sometimes poll (counting the burst at the target), sometimes pause (the target's poller
                    // goes idle and, with a spin budget of 0, to sleep), sometimes go straight on.
                    switch (rng() % 3) {
                    case 0: (void)p.t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE); break;
                    case 1: std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300)); break;
                    default: break;
                    }
                }
                p.sync();
                check(p.t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == total, "all WRITEs completed here");
            },
            120);
    }
}
