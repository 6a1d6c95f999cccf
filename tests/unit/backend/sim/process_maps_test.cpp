// Access checks on process memory: the /proc/<pid>/maps check, process_access (holes, PROT_NONE, read-only memory
// written) and its probe for kernels without MADV_POPULATE_*.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "backend/sim/process_maps.hpp"

namespace sim = coyote::detail::sim;
using sim::ProcAccess;

TEST(ProcessMaps, CheckProcRangeNamesTheFirstOffendingAddress) {
    const std::vector<sim::ProcRange> maps = {
        {0x1000, 0x3000, true, true}, {0x3000, 0x4000, true, false}, {0x5000, 0x6000, false, false}};
    sim::ProcCheck c = sim::check_proc_range(maps, 0x1000, 0x3000, true);
    EXPECT_TRUE(c.ok());
    EXPECT_TRUE(c.all_writable);
    c = sim::check_proc_range(maps, 0x2000, 0x4000, false);
    EXPECT_TRUE(c.ok());
    EXPECT_FALSE(c.all_writable);
    c = sim::check_proc_range(maps, 0x2000, 0x4000, true);
    EXPECT_EQ(c.access, ProcAccess::unwritable);
    EXPECT_EQ(c.bad, 0x3000u);
    c = sim::check_proc_range(maps, 0x3000, 0x5000, false);
    EXPECT_EQ(c.access, ProcAccess::unmapped);
    EXPECT_EQ(c.bad, 0x4000u);
    c = sim::check_proc_range(maps, 0x5000, 0x5001, false);
    EXPECT_EQ(c.access, ProcAccess::unreadable);
    EXPECT_EQ(c.bad, 0x5000u);
    EXPECT_EQ(sim::check_proc_range(maps, 0x0, 0x10, false).access, ProcAccess::unmapped);
    EXPECT_STREQ(sim::describe(ProcAccess::unwritable), "not writable by the process");
}

TEST(ProcessMaps, ReadProcMapsListsAMappingWithItsPermissions) {
    const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    void* m = ::mmap(nullptr, 2 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    const auto a = reinterpret_cast<uint64_t>(m);
    const sim::ProcCheck c = sim::check_proc_range(sim::read_proc_maps(), a, a + 2 * page, false);
    EXPECT_TRUE(c.ok());
    EXPECT_FALSE(c.all_writable);
    EXPECT_EQ(sim::check_proc_range(sim::read_proc_maps(), a, a + page, true).access, ProcAccess::unwritable);
    ::munmap(m, 2 * page);
}

namespace {

/// 1024 pages: page 700 PROT_NONE, page 800 read-only, page 900 a hole.
struct Holey {
    uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    uint64_t a = 0;
    Holey() {
        void* m = ::mmap(nullptr, 1024 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) throw std::runtime_error("mmap failed");
        a = reinterpret_cast<uint64_t>(m);
        std::memset(m, 1, 1024 * page);
        if (::mprotect(at(700), page, PROT_NONE) != 0 || ::mprotect(at(800), page, PROT_READ) != 0 ||
            ::munmap(at(900), page) != 0)
            throw std::runtime_error("mprotect/munmap failed");
    }
    ~Holey() { ::munmap(reinterpret_cast<void*>(a), 1024 * page); }
    void* at(uint64_t p) const { return reinterpret_cast<void*>(a + p * page); }
    uint64_t addr(uint64_t p) const { return a + p * page; }
};

} // namespace

TEST(ProcessMaps, ProcessAccessFindsHolesInaccessibleAndReadOnlyPages) {
    const Holey h;
    EXPECT_EQ(sim::process_access(h.addr(0) + 100, h.addr(700) - 1, true), nullptr); // widened to whole pages
    EXPECT_EQ(sim::process_access(h.addr(5), h.addr(5), true), nullptr);             // empty
    const char* why = sim::process_access(h.addr(0), h.addr(1024), false);
    ASSERT_NE(why, nullptr);
    EXPECT_NE(std::string(why).find("no longer"), std::string::npos) << why;
    EXPECT_NE(sim::process_access(h.addr(700) - 1, h.addr(700) + 1, false), nullptr); // a byte either side
    EXPECT_EQ(sim::process_access(h.addr(701), h.addr(800) + 1, false), nullptr);      // read-only, read
    EXPECT_NE(sim::process_access(h.addr(790), h.addr(801), true), nullptr);           // read-only, written
    EXPECT_NE(sim::process_access(h.addr(850), h.addr(950), false), nullptr);          // the hole
    EXPECT_EQ(sim::process_access(h.addr(901), h.addr(1024), true), nullptr);
}

TEST(ProcessMaps, OldKernelProbeFindsHolesAndInaccessiblePages) {
    const Holey h;
    EXPECT_TRUE(sim::pages_readable(h.addr(0), h.addr(700))); // more pages than one batch of the probe
    EXPECT_TRUE(sim::pages_readable(h.addr(3), h.addr(3)));
    EXPECT_FALSE(sim::pages_readable(h.addr(0), h.addr(1024)));
    EXPECT_FALSE(sim::pages_readable(h.addr(700), h.addr(701)));
    EXPECT_TRUE(sim::pages_readable(h.addr(701), h.addr(900))); // read-only pages are readable
    EXPECT_FALSE(sim::pages_readable(h.addr(850), h.addr(950)));
    EXPECT_TRUE(sim::pages_readable(h.addr(901), h.addr(1024)));
}
