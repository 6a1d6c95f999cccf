// Sim backend: the completion signal of the shared state (signal_completion / wait_completion): a completion
// writes the sleepers' line only while someone sleeps, and no completion is slept through.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
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
    const auto pause = [](std::mt19937& rng) {
        for (int k = std::uniform_int_distribution<int>(0, 2000)(rng); k > 0; --k) asm volatile("" ::: "memory");
    };
    std::thread producer([&] {
        std::mt19937 rng(7);
        for (uint32_t i = 0; i < k_rounds && !stop; ++i) {
            pause(rng);
            complete(s, counter);
            while (acked.load() <= i && !stop) std::this_thread::yield();
        }
    });
    std::mt19937 rng(11);
    int long_waits = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (uint32_t seen = counter.load(); seen < k_rounds && Clock::now() < deadline; seen = counter.load()) {
        acked = seen; // the next completion may come now, while this consumer decides to sleep
        pause(rng);
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
