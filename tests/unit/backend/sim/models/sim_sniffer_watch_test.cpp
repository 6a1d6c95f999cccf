// A NIC's view of its device's sniffer rendezvous (models/examples/rendezvous.hpp): with a keeping thread, a packet
// that finds a re-read due asks that thread (once) and keeps the current view, so that the packet's own thread never
// looks the name up in /dev/shm; only when the thread stays away for k_watch_inline_after does the packet re-read it.
// Without one, the packet re-reads it as soon as it is due. A re-read is due k_watch_period after the last when a
// change of the rendezvous was announced or while a sniffer is published, and only every k_watch_idle_period
// otherwise.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

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
    const int64_t period = std::chrono::nanoseconds(sniffer::k_watch_period).count();
    int wakes = 0;
    sniffer::Watch w(device, nullptr, [](void* c) noexcept { ++*static_cast<int*>(c); }, &wakes);
    const int64_t t0 = coyote::detail::sim::coarse_now_ns();
    EXPECT_FALSE(w.target(t0)); // never read: the packet reads it (nothing published)
    EXPECT_EQ(wakes, 0);

    // A publication is announced: a re-read is due k_watch_period after the last; then a packet asks the keeping
    // thread, once, and keeps the current view.
    auto pub = publish(device, 42);
    ASSERT_TRUE(pub.has_value());
    EXPECT_FALSE(w.target(t0 + period - 1));
    EXPECT_EQ(wakes, 0) << "due before k_watch_period";
    EXPECT_FALSE(w.target(t0 + period)) << "a packet re-read the rendezvous itself although a thread keeps it";
    EXPECT_EQ(wakes, 1);
    EXPECT_FALSE(w.target(t0 + period + 1 * k_ms));
    EXPECT_EQ(wakes, 1) << "the keeping thread is asked once until it re-reads";

    const int64_t t1 = t0 + period + 1 * k_ms;
    w.refresh_if_due(t1);
    const sniffer::Target seen = w.target(t1);
    EXPECT_EQ(seen.pid, ::getpid());
    EXPECT_EQ(seen.id, 42u);
    EXPECT_EQ(wakes, 1);

    // While a sniffer is published the rendezvous is re-read every k_watch_period (its process may end).
    EXPECT_TRUE(w.target(t1 + period - 1));
    EXPECT_EQ(wakes, 1);
    EXPECT_TRUE(w.target(t1 + period));
    EXPECT_EQ(wakes, 2);
    const int64_t t2 = t1 + period;
    w.refresh_if_due(t2);

    // The publication ends and the keeping thread stays away: the packets keep the last view until the thread is
    // k_watch_inline_after late, then one of them re-reads the rendezvous.
    pub.reset();
    EXPECT_TRUE(w.target(t2 + period));
    EXPECT_EQ(wakes, 3);
    const int64_t late = t2 + period + std::chrono::nanoseconds(sniffer::k_watch_inline_after).count();
    EXPECT_FALSE(w.target(late)) << "the packets never re-read the rendezvous without their keeping thread";
    EXPECT_EQ(wakes, 3);
}

TEST(SnifferWatch, WithoutAKeepingThreadAPacketReReadsAnAnnouncedChangeWithinAPeriod) {
    const uint32_t device = private_device();
    const int64_t period = std::chrono::nanoseconds(sniffer::k_watch_period).count();
    sniffer::Watch w(device, nullptr);
    const int64_t t0 = coyote::detail::sim::coarse_now_ns();
    EXPECT_FALSE(w.target(t0));
    auto pub = publish(device, 7);
    ASSERT_TRUE(pub.has_value());
    EXPECT_FALSE(w.target(t0 + period - 1)); // not due yet
    const sniffer::Target seen = w.target(t0 + period);
    EXPECT_EQ(seen.pid, ::getpid());
    EXPECT_EQ(seen.id, 7u);
    pub.reset();
    EXPECT_FALSE(w.target(t0 + 2 * period)) << "the end of the publication is announced too";
}

TEST(SnifferWatch, AfterAnIdleSpellAPacketReReadsAnAnnouncedChangeItself) {
    // The keeping thread is asked only when the re-read is due since less than k_watch_inline_after: a change
    // announced long after the last re-read is read by the packet that notices it (as the first packet of a run).
    const uint32_t device = private_device();
    int wakes = 0;
    sniffer::Watch w(device, nullptr, [](void* c) noexcept { ++*static_cast<int*>(c); }, &wakes);
    const int64_t t0 = coyote::detail::sim::coarse_now_ns();
    EXPECT_FALSE(w.target(t0));
    auto pub = publish(device, 9);
    ASSERT_TRUE(pub.has_value());
    const sniffer::Target seen = w.target(t0 + 100 * k_ms);
    EXPECT_EQ(seen.id, 9u);
    EXPECT_EQ(wakes, 0);
}

TEST(SnifferWatch, WithNoSnifferAndNothingAnnouncedAWatchReReadsOnlyAtTheIdlePeriod) {
    // Each re-read wakes the vFPGA's worker, which takes the polling thread's core for a moment: without a sniffer
    // and without announcements, a watch asks for one only every k_watch_idle_period. Devices share announcement
    // slots, so a test process announcing meanwhile (tests run in parallel) makes a round inconclusive: then it tries
    // again.
    const uint32_t device = private_device();
    std::atomic<uint64_t>* counter = sniffer::announcement(device);
    ASSERT_NE(counter, nullptr) << "no announcement segment";
    const int64_t idle = std::chrono::nanoseconds(sniffer::k_watch_idle_period).count();
    for (int round = 0;; ++round) {
        ASSERT_LT(round, 20) << "other processes announced changes during every round";
        const uint64_t before = counter->load();
        int wakes = 0;
        sniffer::Watch w(device, nullptr, [](void* c) noexcept { ++*static_cast<int*>(c); }, &wakes);
        const int64_t t0 = coyote::detail::sim::coarse_now_ns();
        EXPECT_FALSE(w.target(t0));
        for (int64_t t = t0; t < t0 + idle; t += 3 * k_ms) EXPECT_FALSE(w.target(t));
        const int early = wakes;
        EXPECT_FALSE(w.target(t0 + idle));
        if (counter->load() != before) continue;
        EXPECT_EQ(early, 0) << "a re-read was asked for before the idle period without an announcement";
        EXPECT_EQ(wakes, 1) << "no re-read at the idle period";
        break;
    }
}

TEST(SnifferWatch, TheAnnouncementSegmentIsTheUsersAlone) {
    ASSERT_NE(sniffer::announcement(private_device()), nullptr);
    struct stat st {};
    const std::string path = "/dev/shm/coyote-sim." + std::to_string(::getuid()) + ".sniffers";
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, ::getuid());
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(SnifferWatch, AnAnnouncementSegmentOfAnotherUserOrReadableByOthersIsNotUsed) {
    const std::string name = "/coyote-test." + std::to_string(::getuid()) + "." + std::to_string(::getpid()) + ".ann";
    const std::string path = "/dev/shm" + name;
    ::shm_unlink(name.c_str());
    // Created: private, one page, counters at zero.
    std::atomic<uint64_t>* fresh = sniffer::open_announcements(name);
    ASSERT_NE(fresh, nullptr);
    EXPECT_EQ(fresh->load(), 0u);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_size, 4096);
    // Readable by others (as a umask-less program might leave it): refused.
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    EXPECT_EQ(sniffer::open_announcements(name), nullptr);
    // Another user's: refused (root only can make one).
    if (::geteuid() == 0) {
        ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
        ASSERT_EQ(::chown(path.c_str(), 65534, static_cast<gid_t>(-1)), 0);
        EXPECT_EQ(sniffer::open_announcements(name), nullptr);
    }
    ::shm_unlink(name.c_str());
    // A FIFO at the name: refused without blocking.
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    EXPECT_EQ(sniffer::open_announcements(name), nullptr);
    ::unlink(path.c_str());
}
