// The sim vFPGA's TLB (interval map) and card memory, in isolation.
#include <gtest/gtest.h>

#include <coyote/error.hpp>

#include <cstring>
#include <utility>
#include <vector>

#include "backend/sim/card_memory.hpp"
#include "backend/sim/tlb.hpp"

namespace sim = coyote::detail::sim;
using sim::MapKind;

TEST(SimTlb, LookupCoverageAcrossAdjacentRanges) {
    sim::Tlb tlb;
    tlb.insert(0x10000, 0x10000, 0x12000, MapKind::alloc, 0, true);
    tlb.insert(0x12000, 0x12000, 0x14000, MapKind::alloc, 0, true);
    auto r = tlb.lookup(0x10800, 0x1800, true);
    EXPECT_TRUE(r.covered);
    EXPECT_TRUE(r.owned_only);
    EXPECT_EQ(r.alloc_end, 0u);
    // A range that starts in one allocation and runs into the next overruns the first: not covered.
    r = tlb.lookup(0x11000, 0x2000, true);
    EXPECT_FALSE(r.covered);
    EXPECT_EQ(r.alloc_start, 0x10000u);
    EXPECT_EQ(r.alloc_end, 0x12000u);
    EXPECT_EQ(r.first_gap, 0x12000u);
    r = tlb.lookup(0x13000, 0x2000, false);
    EXPECT_FALSE(r.covered);
    EXPECT_EQ(r.first_gap, 0x14000u);
    EXPECT_EQ(r.alloc_end, 0x14000u);
    r = tlb.lookup(0xf000, 0x10, false);
    EXPECT_FALSE(r.covered);
    EXPECT_EQ(r.first_gap, 0xf000u);
    // One that starts outside any allocation is no overrun, whatever it reaches.
    tlb.insert(0xe000, 0xe000, 0x10000, MapKind::fault, 0, true);
    r = tlb.lookup(0xf000, 0x2000, false);
    EXPECT_TRUE(r.covered);
    EXPECT_EQ(r.alloc_end, 0u);
}

TEST(SimTlb, FaultRangesFillGapsAndUserMapTakesThemOver) {
    sim::Tlb tlb;
    tlb.insert(0x20000, 0x20000, 0x21000, MapKind::alloc, 0, true);
    // A fault over [0x1f000, 0x23000) adds only the two gaps.
    EXPECT_EQ(tlb.insert(0x1f000, 0x1f000, 0x23000, MapKind::fault, 1, false), 0x3000u);
    auto r = tlb.lookup(0x1f000, 0x4000, false);
    EXPECT_TRUE(r.covered);
    EXPECT_FALSE(r.owned_only);
    r = tlb.lookup(0x1f000, 0x10, true);
    EXPECT_TRUE(r.write_denied);
    tlb.grant_write(0x1f000, 0x20000);
    EXPECT_FALSE(tlb.lookup(0x1f000, 0x10, true).write_denied);
    // userMap over a faulted range owns it; userUnmap removes it.
    tlb.insert(0x22000, 0x22000, 0x24000, MapKind::user, 1, true);
    uint64_t s = 0, e = 0;
    ASSERT_TRUE(tlb.find_group(0x22000, MapKind::user, s, e));
    EXPECT_EQ(s, 0x22000u);
    EXPECT_EQ(e, 0x24000u);
    EXPECT_TRUE(tlb.remove_group(0x22000, MapKind::user));
    EXPECT_FALSE(tlb.lookup(0x22000, 0x10, false).covered);
    EXPECT_TRUE(tlb.lookup(0x21000, 0x1000, false).covered); // the part of the fault outside stays
    EXPECT_FALSE(tlb.remove_group(0x22000, MapKind::user));
    // Removing the allocation leaves the fault ranges around it.
    EXPECT_TRUE(tlb.remove_group(0x20000, MapKind::alloc));
    EXPECT_FALSE(tlb.lookup(0x20000, 0x10, false).covered);
    EXPECT_TRUE(tlb.lookup(0x1f000, 0x1000, false).covered);
}

TEST(SimTlb, RemovingAUserGroupHandsOverlappingPagesToTheOtherGroup) {
    sim::Tlb tlb;
    tlb.insert(0x30000, 0x30000, 0x32000, MapKind::user, 0, true);
    tlb.insert(0x31000, 0x31000, 0x33000, MapKind::user, 0, false); // asks for 0x31000 too, gets 0x32000 only
    std::vector<std::pair<uint64_t, uint64_t>> removed;
    ASSERT_TRUE(tlb.remove_group(0x30000, MapKind::user, &removed));
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0], std::make_pair(uint64_t{0x30000}, uint64_t{0x31000}));
    EXPECT_TRUE(tlb.lookup(0x31000, 0x2000, false).covered);
    EXPECT_FALSE(tlb.lookup(0x30000, 0x1000, false).covered);
    removed.clear();
    ASSERT_TRUE(tlb.remove_group(0x31000, MapKind::user, &removed));
    ASSERT_EQ(removed.size(), 2u); // the page handed over and its own
    EXPECT_EQ(tlb.mapped_bytes(MapKind::user), 0u);
    // A getMem buffer's pages that a userMap asked for are never the userMap's to remove.
    tlb.insert(0x40000, 0x40000, 0x42000, MapKind::alloc, 0, true);
    tlb.insert(0x41000, 0x41000, 0x43000, MapKind::user, 0, true);
    removed.clear();
    ASSERT_TRUE(tlb.remove_group(0x41000, MapKind::user, &removed));
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0], std::make_pair(uint64_t{0x42000}, uint64_t{0x43000}));
    EXPECT_TRUE(tlb.lookup(0x40000, 0x2000, true).covered);
}

TEST(SimCardMemory, ZerosUntilWrittenChunksAndRelease) {
    sim::CardMemory card(8ULL << 20);
    const uint64_t base = 0x7f0000000000ULL + sim::CardMemory::k_chunk - 100;
    auto r = card.read_window(base, 1000);
    EXPECT_EQ(r.size(), 100u); // windows never cross a chunk
    for (auto b : r) EXPECT_EQ(b, std::byte{0});
    EXPECT_EQ(card.used(), 0u);
    card.reserve(base, 200);
    EXPECT_EQ(card.used(), 2 * sim::CardMemory::k_chunk);
    auto w = card.write_window(base, 200);
    ASSERT_EQ(w.size(), 100u);
    std::memset(w.data(), 0xab, w.size());
    EXPECT_EQ(card.read_window(base, 1)[0], std::byte{0xab});
    EXPECT_THROW(card.reserve(base + (4ULL << 20), 6ULL << 20), coyote::Error);
    EXPECT_EQ(card.used(), 2 * sim::CardMemory::k_chunk); // nothing allocated by the failed reserve
    card.release(base, 50); // part of a chunk: zeroed
    EXPECT_EQ(card.read_window(base, 1)[0], std::byte{0});
    EXPECT_EQ(card.read_window(base + 50, 1)[0], std::byte{0xab});
    card.release(base - sim::CardMemory::k_chunk, 4 * sim::CardMemory::k_chunk);
    EXPECT_EQ(card.used(), 0u);
}
