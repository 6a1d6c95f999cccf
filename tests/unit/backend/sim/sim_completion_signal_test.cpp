// Sim backend: the completion signal of the shared state (signal_completion / wait_completion): a completion
// writes the sleepers' line only while someone sleeps, and no completion is slept through; deferred completions
// (defer_local_write / claim_deferred) are counted once and never slept through either.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <thread>

#include "backend/sim/shared_state.hpp"

namespace sim = coyote::detail::sim;
using Clock = std::chrono::steady_clock;

namespace {

constexpr long k_second_ns = 1000L * 1000 * 1000 - 1; // a futex timeout's tv_nsec must stay below one second

/// A completion as the NIC and the engine make it: the counter, then the signal.
void complete(sim::SharedState& s, std::atomic<uint32_t>& counter) {
    counter.fetch_add(1, std::memory_order_release);
    sim::signal_completion(s);
}

/// A random moment of work (0 - 2000 empty loop turns).
void random_pause(std::mt19937& rng) {
    for (int k = std::uniform_int_distribution<int>(0, 2000)(rng); k > 0; --k) asm volatile("" ::: "memory");
}

/// The producer of a ping-pong: `rounds` times a random pause, one completion (`complete_one`), then a wait until
/// the consumer acknowledged it (`acked` > round) or `stop`.
std::thread ping_pong_producer(uint32_t rounds, unsigned seed, const std::atomic<uint32_t>& acked,
                               const std::atomic<bool>& stop, std::function<void()> complete_one) {
    return std::thread([=, &acked, &stop] {
        std::mt19937 rng(seed);
        for (uint32_t i = 0; i < rounds && !stop; ++i) {
            random_pause(rng);
            complete_one();
            while (acked.load() <= i && !stop) std::this_thread::yield();
        }
    });
}

TEST(SimCompletionSignal, WithNobodyAsleepACompletionLeavesTheSequenceAlone) {
    sim::SharedState s;
    for (int i = 0; i < 100; ++i) complete(s, s.wback[3]);
    EXPECT_EQ(s.wback[3].load(), 100u);
    EXPECT_EQ(s.cmpl_seq.load(), 0u); // the line a spinning poller would share was never written
    EXPECT_EQ(s.cmpl_waiters.load(), 0u);
}

TEST(SimCompletionSignal, AChangeFoundAfterRegisteringDoesNotSleep) {
    sim::SharedState s;
    const auto t0 = Clock::now();
    int checks = 0;
    sim::wait_completion(s, [&] { return ++checks > 0; }, k_second_ns);
    EXPECT_EQ(checks, 1);
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500));
    EXPECT_EQ(s.cmpl_waiters.load(), 0u);
    EXPECT_EQ(s.cmpl_seq.load(), 0u); // never marked as sleeping
}

TEST(SimCompletionSignal, ASleeperIsWokenByTheCompletionItWaitsFor) {
    sim::SharedState s;
    std::atomic<uint32_t>& counter = s.wback[1];
    std::atomic<bool> done{false};
    Clock::duration slept{};
    std::thread sleeper([&] {
        const auto t0 = Clock::now();
        // Up to one second per wait, and the completion comes after 50 ms: woken, it returns at once.
        while (counter.load() == 0) sim::wait_completion(s, [&] { return counter.load() != 0; }, k_second_ns);
        slept = Clock::now() - t0;
        done = true;
    });
    while (s.cmpl_waiters.load() == 0) std::this_thread::yield(); // asleep (or about to be)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    complete(s, counter);
    sleeper.join();
    EXPECT_TRUE(done);
    EXPECT_GE(s.cmpl_seq.load(), 2u); // a sleeper was registered: the completion advanced the sequence
    EXPECT_EQ(s.cmpl_seq.load() & sim::k_cmpl_sleeping, 0u); // and took the sleeping mark with the wake-up it made
    EXPECT_LT(slept, std::chrono::milliseconds(900)) << "the sleeper ran into its timeout: the wake-up was lost";
}

TEST(SimCompletionSignal, NoCompletionIsSleptThrough) {
    // Ping-pong: the producer completes once, then waits until the consumer saw it. The consumer reads the counter,
    // tells the producer, spends a random moment (a poller's own work) and decides to sleep until the counter moves,
    // for up to a second. A completion that lands in that moment and is slept through shows as a wait of about a
    // second, as nothing else would wake the consumer.
    sim::SharedState s;
    std::atomic<uint32_t>& counter = s.wback[2];
    std::atomic<uint32_t> acked{0};
    constexpr uint32_t k_rounds = 5000;
    std::atomic<bool> stop{false};
    std::thread producer = ping_pong_producer(k_rounds, 7, acked, stop, [&] { complete(s, counter); });
    std::mt19937 rng(11);
    int long_waits = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (uint32_t seen = counter.load(); seen < k_rounds && Clock::now() < deadline; seen = counter.load()) {
        acked = seen; // the next completion may come now, while this consumer decides to sleep
        random_pause(rng);
        const auto t0 = Clock::now();
        sim::wait_completion(s, [&] { return counter.load() != seen; }, k_second_ns);
        if (Clock::now() - t0 > std::chrono::milliseconds(500)) ++long_waits;
    }
    stop = true;
    producer.join();
    EXPECT_EQ(counter.load(), k_rounds);
    EXPECT_EQ(long_waits, 0) << "completions slept through";
    EXPECT_EQ(s.cmpl_waiters.load(), 0u);
}

}  // namespace

// Deferred LOCAL_WRITE completions (defer_local_write / claim_deferred): what a burst of same-host WRITEs leaves
// uncounted moves whole to the counter, once, and a sleeping poller is never left with a deferred completion.

TEST(SimDeferredCompletion, DeferredCompletionsMoveWholeToTheCounter) {
    sim::SharedState s;
    constexpr int32_t ctid = 5;
    for (int i = 0; i < 7; ++i) sim::defer_local_write(s, ctid);
    EXPECT_EQ(sim::local_write_counter(s, ctid).load(), 0u); // nobody sleeps: all seven wait to be claimed
    EXPECT_EQ(s.deferred[ctid].n.load(), 7u);
    EXPECT_EQ(s.cmpl_seq.load(), 0u);
    EXPECT_TRUE(sim::claim_deferred(s, ctid));
    EXPECT_EQ(sim::local_write_counter(s, ctid).load(), 7u);
    EXPECT_EQ(s.deferred[ctid].n.load(), 0u);
    EXPECT_FALSE(sim::claim_deferred(s, ctid)); // nothing left: the counter stays
    EXPECT_EQ(sim::local_write_counter(s, ctid).load(), 7u);
    EXPECT_EQ(s.wback[1 * coyote::N_CTID_MAX + ctid].load(), 7u); // Coyote's layout: LOCAL_WRITE is class 1
    EXPECT_EQ(s.deferred[ctid + 1].n.load(), 0u);
}

TEST(SimDeferredCompletion, WithASleeperADeferredCompletionCountsAtOnce) {
    sim::SharedState s;
    s.cmpl_waiters.store(1); // a poller registered to sleep on this vFPGA
    sim::defer_local_write(s, 2);
    EXPECT_EQ(sim::local_write_counter(s, 2).load(), 1u);
    EXPECT_EQ(s.deferred[2].n.load(), 0u);
    EXPECT_GE(s.cmpl_seq.load(), 2u); // and the sleepers were signalled
}

TEST(SimDeferredCompletion, ASleepingPollerIsNeverLeftWithADeferredCompletion) {
    // As NoCompletionIsSleptThrough, with deferred completions and a poller that claims before it decides to sleep.
    sim::SharedState s;
    constexpr int32_t ctid = 3;
    std::atomic<uint32_t>& counter = sim::local_write_counter(s, ctid);
    std::atomic<uint32_t> acked{0};
    constexpr uint32_t k_rounds = 5000;
    std::atomic<bool> stop{false};
    std::thread producer = ping_pong_producer(k_rounds, 5, acked, stop, [&] { sim::defer_local_write(s, ctid); });
    std::mt19937 rng(13);
    int long_waits = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    std::atomic<uint32_t>& deferred = s.deferred[ctid].n;
    for (;;) {
        (void)sim::claim_deferred(s, ctid);
        const uint32_t seen = counter.load();
        if (seen >= k_rounds || Clock::now() > deadline) break;
        acked = seen;
        random_pause(rng);
        const auto t0 = Clock::now();
        sim::wait_completion(s, [&] { return counter.load() != seen || deferred.load() != 0; }, k_second_ns);
        if (Clock::now() - t0 > std::chrono::milliseconds(500)) ++long_waits;
    }
    stop = true;
    producer.join();
    (void)sim::claim_deferred(s, ctid);
    EXPECT_EQ(counter.load(), k_rounds);
    EXPECT_EQ(long_waits, 0) << "deferred completions slept through";
}

TEST(SimDeferredCompletion, ConcurrentClaimsCountEveryCompletionOnce) {
    sim::SharedState s;
    constexpr int32_t ctid = 9;
    constexpr uint32_t k_each = 200000;
    std::atomic<bool> done{false};
    std::atomic<uint32_t> regressions{0};
    auto claimer = [&] {
        uint32_t last = 0;
        while (!done.load()) {
            (void)sim::claim_deferred(s, ctid);
            const uint32_t now = sim::local_write_counter(s, ctid).load();
            if (now < last) regressions.fetch_add(1);
            last = now;
        }
    };
    std::thread c1(claimer), c2(claimer);
    std::thread p1([&] { for (uint32_t i = 0; i < k_each; ++i) sim::defer_local_write(s, ctid); });
    std::thread p2([&] { for (uint32_t i = 0; i < k_each; ++i) sim::defer_local_write(s, ctid); });
    p1.join();
    p2.join();
    done = true;
    c1.join();
    c2.join();
    (void)sim::claim_deferred(s, ctid);
    EXPECT_EQ(sim::local_write_counter(s, ctid).load(), 2 * k_each);
    EXPECT_EQ(s.deferred[ctid].n.load(), 0u);
    EXPECT_EQ(regressions.load(), 0u);
}
