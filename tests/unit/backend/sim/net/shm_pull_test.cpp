// Shm WRITEs copied by the target's poller (pulls, net/pull_line.hpp). The protocol in one process: every offer is
// taken exactly once, by the target or back by its producer, and counted in order. Between two sim processes: a
// polling target copies large WRITEs itself, with the data and both sides' counts exact; WRITEs in bursts are not
// offered; an offer the target leaves (it stopped polling) is copied by its initiator; a READ after an offered
// WRITE sees it; an initiator whose target dies while it copies a WRITE is told the target is gone.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/clock.hpp"
#include "backend/sim/net/pull_line.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Child;
using coyote_test::Peer;
namespace net = coyote::detail::sim::net;
namespace sim = coyote::detail::sim;

namespace {

TEST(PullLine, AnOfferIsTakenOnceAndCountedInOrder) {
    net::PullLine line;
    net::PullOffer o;
    o.src_key = 7;
    o.src_ctid = 3;
    o.last = true;
    o.len = 4096;
    o.src_offset = 64;
    o.dst_offset = 128;
    EXPECT_FALSE(net::pull_pending(line));
    const uint64_t s1 = net::pull_offer(line, o);
    ASSERT_EQ(s1, 1u);
    EXPECT_TRUE(net::pull_pending(line));
    EXPECT_EQ(net::pull_offer(line, o), 0u) << "a second offer before the first is claimed";
    const auto seen = net::pull_peek(line);
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(seen->first, 1u);
    EXPECT_EQ(seen->second.src_key, 7u);
    EXPECT_EQ(seen->second.src_ctid, 3);
    EXPECT_TRUE(seen->second.last);
    EXPECT_EQ(seen->second.len, 4096u);
    EXPECT_EQ(seen->second.src_offset, 64u);
    EXPECT_EQ(seen->second.dst_offset, 128u);
    EXPECT_TRUE(net::pull_claim(line, 1));
    EXPECT_FALSE(net::pull_claim(line, 1)) << "claimed twice";
    EXPECT_FALSE(net::pull_pending(line));
    // The next offer may go out while the first is being copied, but is counted after it.
    const uint64_t s2 = net::pull_offer(line, o);
    ASSERT_EQ(s2, 2u);
    EXPECT_TRUE(net::pull_claim(line, 2));
    EXPECT_TRUE(net::pull_turn(line, 1));
    EXPECT_FALSE(net::pull_turn(line, 2));
    net::pull_finish(line, 1);
    EXPECT_TRUE(net::pull_turn(line, 2));
    net::pull_finish(line, 2);
}

TEST(PullLine, ProducerAndTargetRacingTakeEachOfferExactlyOnce) {
    // A producer offers and, after a short wait, takes back its offer; a target thread takes what it sees. Every
    // sequence must be claimed by exactly one side, and `done` must advance in order.
    net::PullLine line;
    constexpr uint64_t k_offers = 4000;
    std::vector<std::atomic<int>> taken(k_offers + 1);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> out_of_order{0};
    std::thread target([&] {
        while (!stop.load()) {
            const auto next = net::pull_peek(line);
            if (!next) continue;
            const uint64_t seq = next->first;
            if (!net::pull_claim(line, seq)) continue;
            taken[seq].fetch_add(1);
            while (!net::pull_turn(line, seq)) {
            }
            if (line.done.load() != seq - 1) out_of_order.fetch_add(1);
            net::pull_finish(line, seq);
        }
    });
    net::PullOffer o;
    o.len = 1;
    uint64_t by_producer = 0;
    for (uint64_t i = 1; i <= k_offers; ++i) {
        uint64_t seq = 0;
        while ((seq = net::pull_offer(line, o)) == 0) {
        }
        ASSERT_EQ(seq, i);
        // Even offers: left to the target for a while (it may be descheduled); odd ones: taken back at once if the
        // target has not been quicker.
        if (i % 2 == 0) {
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
            while (line.claimed.load() < seq && std::chrono::steady_clock::now() < until) {
            }
        }
        if (net::pull_claim(line, seq)) {
            ++by_producer;
            taken[seq].fetch_add(1);
            while (!net::pull_turn(line, seq)) {
            }
            net::pull_finish(line, seq);
        }
    }
    while (line.done.load() != k_offers) {
    }
    stop = true;
    target.join();
    for (uint64_t s = 1; s <= k_offers; ++s) ASSERT_EQ(taken[s].load(), 1) << "offer " << s;
    EXPECT_EQ(out_of_order.load(), 0u);
    EXPECT_GT(by_producer, 0u) << "the producer never took an offer back";
    EXPECT_LT(by_producer, k_offers) << "the target never took an offer";
}

constexpr uint64_t k_buf = 1 << 20;
/// The tests that wait for an event of the protocol (an offer taken, taken back) try rounds for at most this long:
/// on a loaded machine the two processes may not run at the same time for a while. Under ThreadSanitizer a poll
/// takes microseconds, longer than an offer waits, so the events are not expected there (the paths still run).
constexpr bool k_slow = coyote_test::k_thread_sanitizer;
constexpr auto k_give_up = std::chrono::seconds(k_slow ? 3 : 20);
constexpr uint32_t k_msg = 64 * 1024;

void shm_env() {
    coyote_test::child_env("shm");
    ::setenv("COYOTE_SIM_PULL_MIN", "16384", 1);
}

/// This process's NIC counters (device 0, vFPGA 0).
struct OwnNic {
    coyote::detail::ShmSegment seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".nic");
    const sim::NicCounters& counters() const { return static_cast<const sim::NicShared*>(seg.get())->counters; }
};

/// The CPU time of the calling thread.
std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

/// A tight checkCompleted loop on `op` until `n`, with a deadline.
void spin_until(coyote::cThread& t, CoyoteOper op, uint32_t n, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    uint32_t got = 0;
    for (unsigned spins = 1; (got = t.checkCompleted(op)) < n; ++spins)
        if ((spins & 0x3FFu) == 0 && std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error(what + ": " + std::to_string(got) + " of " + std::to_string(n) + " after 20 s");
}

TEST(ShmPull, APollingTargetCopiesLargeWritesItself) {
    // Rounds of k_n single WRITEs of 64 KiB while the server polls, until the client saw one of its offers taken
    // (a loaded machine may keep the two processes from running at the same time for a while). The last WRITE of a
    // round carries whether another round follows.
    constexpr uint32_t k_max_rounds = 100000;
    constexpr uint32_t k_n = 8;
    constexpr uint64_t k_flag = k_n * k_msg;
    auto server = [](Peer& p) {
        OwnNic nic;
        bool more = true;
        for (uint32_t r = 0; more; ++r) {
            p.t.clearCompleted();
            p.sync();
            spin_until(p.t, CoyoteOper::LOCAL_WRITE, k_n + 1, "server LOCAL_WRITE");
            for (uint32_t i = 0; i < k_n; ++i) {
                const int64_t bad = coyote_test::mismatch(p.buf + i * k_msg, 0, k_msg, r * 16 + i);
                check(bad < 0, "round " + std::to_string(r) + " message " + std::to_string(i) + " differs at " +
                                   std::to_string(bad));
            }
            check(p.t.checkCompleted(CoyoteOper::LOCAL_WRITE) == k_n + 1, "exactly the WRITEs counted");
            more = p.buf[k_flag] != 0;
        }
        p.sync();
        check(k_slow || nic.counters().pulled.load() > 0, "no WRITE was copied by the polling target");
        check(nic.counters().pull_refused.load() == 0, "the target refused offers");
    };
    auto client = [](Peer& p) {
        OwnNic nic;
        const auto give_up = std::chrono::steady_clock::now() + k_give_up;
        for (uint32_t r = 0;; ++r) {
            for (uint32_t i = 0; i < k_n; ++i) coyote_test::fill(p.buf + i * k_msg, k_msg, r * 16 + i);
            p.t.clearCompleted();
            p.sync(); // the server leaves it first and polls
            // One WRITE at a time (a poll between them): WRITEs in bursts are copied by their initiator.
            for (uint32_t i = 0; i < k_n; ++i) {
                p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                           rdmaSg{.local_offs = i * k_msg, .remote_offs = i * k_msg, .len = k_msg});
                spin_until(p.t, CoyoteOper::REMOTE_RDMA_WRITE, i + 1, "client WRITE");
            }
            const bool more = nic.counters().pull_offers_taken.load() == 0 && r + 1 < k_max_rounds &&
                              std::chrono::steady_clock::now() < give_up;
            p.buf[k_flag] = more ? 1 : 0;
            p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_flag, .remote_offs = k_flag, .len = 1});
            spin_until(p.t, CoyoteOper::REMOTE_RDMA_WRITE, k_n + 1, "client REMOTE_RDMA_WRITE");
            check(p.t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == k_n + 1, "exactly the WRITEs completed");
            if (!more) break;
        }
        p.sync();
        check(k_slow || nic.counters().pull_offers_taken.load() > 0, "no offer was taken by the polling target");
    };
    coyote_test::run_pair(shm_env, k_buf, server, client);
}

TEST(ShmPull, WritesInBurstsAreCopiedByTheirInitiator) {
    // Rounds of 8 WRITEs of 64 KiB posted without a poll between them while the server polls: a burst's lines are in
    // the initiator's cache after its first WRITE, so only the first WRITE after a single one may be offered.
    constexpr uint32_t k_rounds = 50;
    constexpr uint32_t k_n = 8;
    auto server = [](Peer& p) {
        for (uint32_t r = 0; r < k_rounds; ++r) {
            p.t.clearCompleted();
            p.sync();
            spin_until(p.t, CoyoteOper::LOCAL_WRITE, k_n, "server LOCAL_WRITE");
            for (uint32_t i = 0; i < k_n; ++i)
                check(coyote_test::mismatch(p.buf + i * k_msg, 0, k_msg, r * 16 + i) < 0,
                      "round " + std::to_string(r) + " message " + std::to_string(i));
        }
        p.sync();
    };
    auto client = [](Peer& p) {
        OwnNic nic;
        for (uint32_t r = 0; r < k_rounds; ++r) {
            for (uint32_t i = 0; i < k_n; ++i) coyote_test::fill(p.buf + i * k_msg, k_msg, r * 16 + i);
            p.t.clearCompleted();
            p.sync();
            for (uint32_t i = 0; i < k_n; ++i)
                p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                           rdmaSg{.local_offs = i * k_msg, .remote_offs = i * k_msg, .len = k_msg});
            spin_until(p.t, CoyoteOper::REMOTE_RDMA_WRITE, k_n, "client REMOTE_RDMA_WRITE");
        }
        p.sync();
        // Only the very first WRITE (no burst before it) may have been offered.
        const uint64_t taken = nic.counters().pull_offers_taken.load() + nic.counters().pull_taken_back.load();
        check(taken <= 1, std::to_string(taken) + " WRITEs of " + std::to_string(k_rounds * k_n) +
                              " in bursts were offered");
    };
    coyote_test::run_pair(shm_env, k_buf, server, client);
}

TEST(ShmPull, AnOfferTheTargetLeavesIsCopiedByItsInitiator) {
    // The server polls until a first (small) WRITE landed, then spins for a while without a call into the runtime;
    // the client posts a large WRITE a moment after the first, while the server's poll stamp is still recent. It
    // must complete all the same, long before the server looks again. Rounds go on until the client took an offer
    // back (a loaded machine may keep the server from polling when the client posts); a last 1-byte WRITE of each
    // round carries whether another follows.
    constexpr uint32_t k_max_rounds = 100000;
    constexpr auto k_away = std::chrono::milliseconds(k_slow ? 50 : 10);
    constexpr uint64_t k_flag = k_msg + 64;
    auto server = [&](Peer& p) {
        bool more = true;
        for (uint32_t r = 0; more; ++r) {
            p.t.clearCompleted();
            p.sync();
            spin_until(p.t, CoyoteOper::LOCAL_WRITE, 1, "server first WRITE");
            const auto until = std::chrono::steady_clock::now() + k_away;
            while (std::chrono::steady_clock::now() < until) {
            }
            p.sync();
            check(coyote_test::mismatch(p.buf, 0, k_msg + 64, r) < 0, "round " + std::to_string(r) + " data");
            check(p.t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 3, "the WRITEs counted");
            more = p.buf[k_flag] != 0;
        }
        p.sync();
    };
    auto client = [&](Peer& p) {
        OwnNic nic;
        const auto give_up = std::chrono::steady_clock::now() + k_give_up;
        for (uint32_t r = 0;; ++r) {
            coyote_test::fill(p.buf, k_msg + 64, r);
            p.t.clearCompleted();
            p.sync(); // the server leaves it first and polls (a poller gone to sleep would not be offered anything)
            p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = 64});
            const auto soon = std::chrono::steady_clock::now() + std::chrono::microseconds(2);
            while (std::chrono::steady_clock::now() < soon) {
            }
            // The thread's CPU time, not the wall clock: on a loaded machine the client may lose its core for
            // milliseconds (a wait that sleeps shows in the counter check at the end).
            const auto start = thread_cpu();
            p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 64, .remote_offs = 64, .len = k_msg});
            spin_until(p.t, CoyoteOper::REMOTE_RDMA_WRITE, 2, "client WRITEs");
            const auto took = thread_cpu() - start;
            check(took < k_away * 4 / 5, "round " + std::to_string(r) + ": the second WRITE kept the client busy for " +
                                             std::to_string(std::chrono::duration<double, std::milli>(took).count()) +
                                             " ms, as if it waited for the server to poll again");
            const bool more = nic.counters().pull_taken_back.load() == 0 && r + 1 < k_max_rounds &&
                              std::chrono::steady_clock::now() < give_up;
            p.buf[k_flag] = more ? 1 : 0;
            p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_flag, .remote_offs = k_flag, .len = 1});
            spin_until(p.t, CoyoteOper::REMOTE_RDMA_WRITE, 3, "client flag WRITE");
            p.sync();
            if (!more) break;
        }
        p.sync();
        check(k_slow || nic.counters().pull_taken_back.load() > 0, "no offer was taken back in 20 s");
    };
    coyote_test::run_pair(shm_env, k_buf, server, client);
}

TEST(ShmPull, AnInitiatorWhoseTargetDiesWhileCopyingIsToldItIsGone) {
    // The server stands in for a target killed between taking an offer and finishing its copy: it stamps its pull
    // line as a polling thread does and dies (SIGKILL) as soon as it took an offer. The client's REMOTE_RDMA_WRITE
    // count then waits for a copy nobody will make: its poll must end with peer_gone naming the server, not spin.
    const uint16_t port = coyote_test::free_port();
    Child server([port] {
        shm_env();
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_buf, port);
        coyote::detail::ShmSegment seg = coyote::detail::ShmSegment::open(sim::vfpga_segment_prefix(0, 0) + ".state");
        net::PullLine* lines = net::pull_lines_in(*static_cast<sim::SharedState*>(seg.get()), seg.size());
        if (lines == nullptr) return 2;
        net::PullLine& line = lines[t.getCtid()];
        t.connSync(false);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
        for (uint32_t spins = 0; (++spins & 0xFFFu) != 0 || std::chrono::steady_clock::now() < deadline;) {
            line.polled_tick.store(sim::tick_stamp(), std::memory_order_relaxed);
            if (const auto next = net::pull_peek(line); next && net::pull_claim(line, next->first)) ::raise(SIGKILL);
        }
        return 3;
    });
    const pid_t server_pid = server.pid();
    Child client([port, server_pid] {
        shm_env();
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_buf, port, "127.0.0.1");
        t.connSync(true);
        OwnNic nic;
        // Single WRITEs until one was taken; the ones taken back complete here.
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (uint32_t i = 1;; ++i) {
            check(std::chrono::steady_clock::now() < give_up, "no offer was taken in 20 s");
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.len = k_msg});
            if (nic.counters().pull_offers_taken.load() != 0) break;
            spin_until(t, CoyoteOper::REMOTE_RDMA_WRITE, i, "a WRITE taken back");
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (uint32_t spins = 0; (++spins & 0x3FFu) != 0 || std::chrono::steady_clock::now() < deadline;) {
            try {
                (void)t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE);
            } catch (const coyote::Error& e) {
                const std::string what = e.what();
                check(e.code() == make_error_code(coyote::Errc::peer_gone), "a peer_gone error: " + what);
                check(what.find("REMOTE_RDMA_WRITE") != std::string::npos &&
                          what.find("peer process " + std::to_string(server_pid)) != std::string::npos,
                      "the message names the poll and the peer process: " + what);
                return 0;
            }
        }
        return 4;
    });
    EXPECT_EQ(server.wait(), 128 + SIGKILL) << "the server did not take an offer";
    EXPECT_EQ(client.wait(), 0) << "client";
}

TEST(ShmPull, AReadAfterAnOfferedWriteSeesIt) {
    // Single WRITEs (a poll between them, so each may be offered), each followed at once by a READ of its range:
    // the READ waits until the target's poller copied the WRITE. Rounds go on until an offer was taken (a loaded
    // machine may keep the two processes from running at the same time for a while), then a 1-byte WRITE stops the
    // server.
    constexpr uint32_t k_min_rounds = 50, k_max_rounds = 200000;
    constexpr uint64_t k_stop = k_buf / 2 - 64;
    auto server = [](Peer& p) {
        p.sync();
        // Polls (and so takes offers) until the client's stop byte arrives.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
        while (std::atomic_ref<uint8_t>(p.buf[k_stop]).load() == 0) {
            (void)p.t.checkCompleted(CoyoteOper::LOCAL_WRITE);
            check(std::chrono::steady_clock::now() < deadline, "the client's stop byte did not arrive in 40 s");
        }
        p.sync();
    };
    auto client = [](Peer& p) {
        OwnNic nic;
        p.sync();
        uint8_t* back = p.buf + k_buf / 2;
        const auto give_up = std::chrono::steady_clock::now() + k_give_up;
        for (uint32_t r = 0; r < k_max_rounds && std::chrono::steady_clock::now() < give_up; ++r) {
            if (r >= k_min_rounds && nic.counters().pull_offers_taken.load() > 0) break;
            coyote_test::fill(p.buf, k_msg, 100 + r);
            p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = k_msg});
            p.t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = k_buf / 2, .remote_offs = 0, .len = k_msg});
            spin_until(p.t, CoyoteOper::REMOTE_RDMA_READ, r + 1, "client READ");
            const int64_t bad = coyote_test::mismatch(back, 0, k_msg, 100 + r);
            check(bad < 0, "round " + std::to_string(r) + ": the READ after the WRITE differs at " +
                               std::to_string(bad));
        }
        p.buf[k_stop] = 1;
        p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_stop, .remote_offs = k_stop, .len = 1});
        p.sync();
        check(k_slow || nic.counters().pull_offers_taken.load() > 0, "no WRITE was offered and taken in 20 s");
    };
    coyote_test::run_pair(shm_env, k_buf, server, client);
}

}  // namespace
