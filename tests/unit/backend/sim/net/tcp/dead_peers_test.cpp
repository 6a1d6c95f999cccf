// DeadPeers: the TCP wire's bounded record of lost peers.
#include <gtest/gtest.h>

#include <string>

#include "backend/sim/net/tcp/dead_peers.hpp"

using coyote::detail::sim::net::DeadPeers;

TEST(DeadPeers, KeepsTheReasonOfEachLostPeer) {
    DeadPeers d(8);
    d.record(7, "connection to 10.0.0.2:4000 lost: the peer closed the connection");
    d.record(9, "connection to 10.0.0.3:4000 lost: recv failed");
    ASSERT_TRUE(d.find(7).has_value());
    EXPECT_EQ(*d.find(7), "connection to 10.0.0.2:4000 lost: the peer closed the connection");
    EXPECT_EQ(*d.find(9), "connection to 10.0.0.3:4000 lost: recv failed");
    EXPECT_FALSE(d.find(8).has_value());
    d.record(7, "again");
    EXPECT_EQ(*d.find(7), "again");
    EXPECT_EQ(d.size(), 2u);
}

TEST(DeadPeers, APeerThatConnectsAgainIsForgotten) {
    DeadPeers d(8);
    d.record(7, "lost");
    d.erase(7);
    EXPECT_FALSE(d.find(7).has_value());
    EXPECT_EQ(d.size(), 0u);
}

TEST(DeadPeers, BeyondTheCapacityTheOldestRecordGoes) {
    // Keys in the opposite order of their records: what goes is the oldest, not the smallest key.
    DeadPeers d(3);
    for (uint64_t k = 100; k > 90; --k) d.record(k, "lost " + std::to_string(k));
    EXPECT_EQ(d.size(), 3u);
    for (uint64_t k = 100; k > 93; --k) EXPECT_FALSE(d.find(k).has_value()) << k;
    for (uint64_t k = 93; k > 90; --k) EXPECT_EQ(*d.find(k), "lost " + std::to_string(k));
    // A record renewed counts from its renewal.
    d.record(93, "lost again");
    d.record(50, "lost 50");
    EXPECT_FALSE(d.find(92).has_value());
    EXPECT_EQ(*d.find(93), "lost again");
    EXPECT_TRUE(d.find(91).has_value());
    EXPECT_TRUE(d.find(50).has_value());
}

TEST(DeadPeers, ACapacityOfZeroKeepsOne) {
    DeadPeers d(0);
    d.record(1, "a");
    d.record(2, "b");
    EXPECT_EQ(d.size(), 1u);
    EXPECT_EQ(*d.find(2), "b");
}
