// A NIC's view of its device's sniffer rendezvous (models/examples/rendezvous.hpp): with a keeping thread, a packet
// that finds a re-read due asks that thread (once) and keeps the current view, so that the packet's own thread never
// looks the name up in /dev/shm; only when the thread stays away for k_watch_inline_after does the packet re-read it.
// Without one, the packet re-reads it as soon as it is due.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "backend/sim/clock.hpp"
#include "backend/sim/models/examples/rendezvous.hpp"

namespace sniffer = coyote::detail::sim::sniffer;

namespace {

constexpr int64_t k_ms = 1'000'000;

/// A device number no other test process publishes for.
uint32_t private_device() { return 4000 + static_cast<uint32_t>(::getpid() % 10000); }

std::optional<sniffer::Publication> publish(uint32_t device, uint64_t id) {
    sniffer::RendezvousRecord holder{};
    return sniffer::Publication::claim(device, id, holder);
}

}  // namespace

TEST(SnifferWatch, APacketLeavesADueReReadToTheKeepingThread) {
    const uint32_t device = private_device();
    int wakes = 0;
    sniffer::Watch w(device, nullptr, [](void* c) noexcept { ++*static_cast<int*>(c); }, &wakes);
    const int64_t t0 = coyote::detail::sim::coarse_now_ns();
    EXPECT_FALSE(w.target(t0)); // never read: the packet reads it (nothing published)
    EXPECT_EQ(wakes, 0);

    auto pub = publish(device, 42);
    ASSERT_TRUE(pub.has_value());
    EXPECT_FALSE(w.target(t0 + 2 * k_ms)); // not due yet
    EXPECT_EQ(wakes, 0);
    EXPECT_FALSE(w.target(t0 + 5 * k_ms)) << "a packet re-read the rendezvous itself although a thread keeps it";
    EXPECT_EQ(wakes, 1);
    EXPECT_FALSE(w.target(t0 + 6 * k_ms));
    EXPECT_EQ(wakes, 1) << "the keeping thread is asked once until it re-reads";

    w.refresh_if_due(t0 + 6 * k_ms);
    const sniffer::Target seen = w.target(t0 + 6 * k_ms);
    EXPECT_EQ(seen.pid, ::getpid());
    EXPECT_EQ(seen.id, 42u);

    // The publication ends and the keeping thread stays away: the packets keep the last view until the thread is
    // k_watch_inline_after late, then one of them re-reads the rendezvous.
    pub.reset();
    const int64_t due = t0 + 6 * k_ms + std::chrono::nanoseconds(sniffer::k_watch_period).count();
    EXPECT_TRUE(w.target(due + 1 * k_ms));
    EXPECT_EQ(wakes, 2);
    const int64_t late = due + std::chrono::nanoseconds(sniffer::k_watch_inline_after).count();
    EXPECT_FALSE(w.target(late)) << "the packets never re-read the rendezvous without their keeping thread";
    EXPECT_EQ(wakes, 2);
}

TEST(SnifferWatch, WithoutAKeepingThreadAPacketReReadsWhenDue) {
    const uint32_t device = private_device();
    sniffer::Watch w(device, nullptr);
    const int64_t t0 = coyote::detail::sim::coarse_now_ns();
    EXPECT_FALSE(w.target(t0));
    auto pub = publish(device, 7);
    ASSERT_TRUE(pub.has_value());
    EXPECT_FALSE(w.target(t0 + 1 * k_ms)); // not due yet
    const sniffer::Target seen = w.target(t0 + 5 * k_ms);
    EXPECT_EQ(seen.pid, ::getpid());
    EXPECT_EQ(seen.id, 7u);
}
