// InflightCount: the TCP wire's per-ctid count of requests waiting for an answer, tagged with the ctid's
// generation. An answer to a request of an earlier owner of the ctid (handled while or after the ctid was
// unregistered) must never change the count of the current owner: once it wrapped the count below zero and every
// post of the reused ctid saw a full FIFO until its 120 s post timeout.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "backend/sim/net/nic_state.hpp"

using coyote::detail::sim::net::InflightCount;

TEST(InflightCount, CountsTheRequestsOfTheCurrentGeneration) {
    InflightCount c;
    c.reset(3);
    for (int i = 0; i < 5; ++i) c.add(3);
    EXPECT_EQ(c.count(), 5u);
    c.drop(3);
    c.drop(3);
    EXPECT_EQ(c.count(), 3u);
}

TEST(InflightCount, AnswersOfAnEarlierGenerationChangeNothing) {
    InflightCount c;
    c.reset(1);
    for (int i = 0; i < 4; ++i) c.add(1);
    c.reset(2); // the ctid was unregistered with four requests on the wire
    for (int i = 0; i < 4; ++i) c.drop(1);
    EXPECT_EQ(c.count(), 0u); // not 2^32 - 4
    c.add(2);
    c.drop(1);
    EXPECT_EQ(c.count(), 1u);
    c.add(1); // a post that claimed its PSN before the unregistration is not counted either
    EXPECT_EQ(c.count(), 1u);
    c.drop(2);
    c.drop(2); // never below zero
    EXPECT_EQ(c.count(), 0u);
}

TEST(InflightCount, GenerationsAreTellApartAcrossTheLow32Bits) {
    InflightCount c;
    const uint64_t g = (uint64_t{1} << 32) + 7;
    c.reset(g);
    c.add(g);
    c.drop(7); // a different generation with the same low bits would be 2^32 reuses ago: the tag compares 32 bits
    EXPECT_EQ(c.count(), 0u);
    c.add(g);
    c.drop(g + 1);
    EXPECT_EQ(c.count(), 1u);
}

// Answer threads drop requests of the generation they went out under while the ctid is reset again and again:
// the count never exceeds what the current generation posted and never wraps.
TEST(InflightCount, ResetsRacingWithAnswersNeverWrapTheCount) {
    InflightCount c;
    std::atomic<uint64_t> gen{1};
    c.reset(1);
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> worst{0};
    constexpr int k_threads = 4;
    constexpr uint32_t k_per_thread = 4; // each thread keeps at most this many of its own in flight
    std::vector<std::thread> answerers;
    for (int t = 0; t < k_threads; ++t)
        answerers.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                const uint64_t g = gen.load();
                for (uint32_t i = 0; i < k_per_thread; ++i) c.add(g);
                for (uint32_t i = 0; i < k_per_thread; ++i) {
                    const uint32_t now = c.count();
                    uint32_t w = worst.load();
                    while (now > w && !worst.compare_exchange_weak(w, now)) {
                    }
                    c.drop(g);
                }
            }
        });
    for (int i = 0; i < 200000; ++i) c.reset(gen.fetch_add(1) + 1);
    stop = true;
    for (auto& t : answerers) t.join();
    EXPECT_LE(worst.load(), static_cast<uint32_t>(k_threads) * k_per_thread);
    EXPECT_EQ(c.count(), 0u);
}
