// The CPUs of the TCP wire's threads (COYOTE_SIM_WIRE_CPUS): inherit (the default) keeps the rank's binding, all
// widens them from a rank bound to one core to every CPU the process may use, a list names them, and a list that
// names no usable CPU (or no list at all) is an error naming the variable.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <sched.h>

#include <optional>
#include <string>

#include "backend/sim/net/tcp/wire_cpus.hpp"
#include "unit/rdma_test_support.hpp"

using coyote::detail::sim::net::wire_cpus_problem;
using coyote::detail::sim::net::wire_thread_cpus;
using coyote_test::check;

namespace {

cpu_set_t affinity_of(pid_t tid) {
    cpu_set_t s;
    CPU_ZERO(&s);
    check(::sched_getaffinity(tid, sizeof(s), &s) == 0, "sched_getaffinity");
    return s;
}

cpu_set_t only(size_t cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return s;
}

/// The first CPU of `s`.
size_t first_of(const cpu_set_t& s) {
    for (size_t c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &s)) return c;
    return 0;
}

/// Whether every CPU of `small` is in `big`.
bool includes(const cpu_set_t& big, const cpu_set_t& small) {
    cpu_set_t both;
    CPU_AND(&both, &big, &small);
    return CPU_EQUAL(&both, &small);
}

/// Runs `body` with the calling thread bound to `cpus`, then restores its binding.
template <class Body>
void bound_to(const cpu_set_t& cpus, Body&& body) {
    const cpu_set_t before = affinity_of(0);
    ASSERT_EQ(::sched_setaffinity(0, sizeof(cpus), &cpus), 0);
    body();
    ASSERT_EQ(::sched_setaffinity(0, sizeof(before), &before), 0);
}

}  // namespace

TEST(WireCpus, InheritKeepsTheBinding) { EXPECT_FALSE(wire_thread_cpus("inherit").has_value()); }

TEST(WireCpus, AllWidensARankBoundToOneCpuToEveryUsableOne) {
    const cpu_set_t mine = affinity_of(0); // unbound under ctest; a launcher may have narrowed it (then: at least it)
    if (CPU_COUNT(&mine) < 2) GTEST_SKIP() << "one usable CPU: nothing to widen to";
    std::optional<cpu_set_t> widest;
    bound_to(only(first_of(mine)), [&] { widest = wire_thread_cpus("all"); });
    ASSERT_TRUE(widest.has_value());
    EXPECT_TRUE(includes(*widest, mine)) << CPU_COUNT(&*widest) << " CPUs; this process had " << CPU_COUNT(&mine);
    // A thread that may use every one of them already: nothing to change.
    bound_to(*widest, [&] { EXPECT_FALSE(wire_thread_cpus("all").has_value()); });
}

TEST(WireCpus, AListNamesTheCpus) {
    const cpu_set_t all = affinity_of(0);
    const size_t cpu = first_of(all);
    if (CPU_COUNT(&all) < 2) GTEST_SKIP() << "one usable CPU: a list equals the binding";
    const auto cpus = wire_thread_cpus(std::to_string(cpu) + ",4000-4001"); // CPUs beyond the machine drop out
    ASSERT_TRUE(cpus.has_value());
    const cpu_set_t want = only(cpu);
    EXPECT_TRUE(CPU_EQUAL(&*cpus, &want));
}

TEST(WireCpus, AListWithoutAUsableCpuIsAnErrorNamingTheVariable) {
    for (const std::string bad : {"garbage", "", "0-", "1000000", "4000-4001", "-1", "1--2", ",1", "1,", "99999999"}) {
        try {
            (void)wire_thread_cpus(bad);
            ADD_FAILURE() << "'" << bad << "' was accepted";
        } catch (const coyote::Error& e) {
            EXPECT_NE(std::string(e.what()).find("COYOTE_SIM_WIRE_CPUS"), std::string::npos) << e.what();
        }
        EXPECT_TRUE(wire_cpus_problem(bad).has_value()) << bad;
    }
    EXPECT_FALSE(wire_cpus_problem("all").has_value());
    EXPECT_FALSE(wire_cpus_problem("inherit").has_value());
}

class WireThreads : public ::testing::TestWithParam<const char*> {};

TEST_P(WireThreads, RunWhereTheSettingPutsThem) {
    const std::string setting = GetParam();
    const cpu_set_t all = affinity_of(0);
    if (CPU_COUNT(&all) < 2) GTEST_SKIP() << "one usable CPU: every setting gives the same placement";
    const size_t cpu = first_of(all);
    // Each side binds itself to one CPU, as mpirun binds small jobs, before it opens its cThread.
    auto check_threads = [&] {
        const cpu_set_t rank = only(cpu);
        const cpu_set_t mine = affinity_of(0);
        check(CPU_EQUAL(&rank, &mine), "the rank's own thread stays bound");
        size_t seen = 0;
        for (const char* name : {"coyote-wire-rx", "coyote-wire-tx", "coyote-accept"})
            for (pid_t tid : coyote_test::threads_named(name)) {
                const cpu_set_t got = affinity_of(tid);
                // all: every CPU of the process (at least those the test started with); else the rank's one CPU.
                const bool placed = setting == "all" ? includes(got, all) : CPU_EQUAL(&got, &rank);
                check(placed, std::string(name) + " runs on " + std::to_string(CPU_COUNT(&got)) + " CPUs (" + setting +
                                  ")");
                ++seen;
            }
        check(seen >= 3, "expected a reader, a sender and an acceptor thread, saw " + std::to_string(seen));
    };
    coyote_test::after_first_read(
        [&] {
            coyote_test::child_env("tcp");
            if (setting == "unset") ::unsetenv("COYOTE_SIM_WIRE_CPUS"); // the default: inherit
            else ::setenv("COYOTE_SIM_WIRE_CPUS", setting.c_str(), 1);
            const cpu_set_t one = only(cpu);
            check(::sched_setaffinity(0, sizeof(one), &one) == 0, "bind to one CPU");
        },
        check_threads);
}

INSTANTIATE_TEST_SUITE_P(Settings, WireThreads, ::testing::Values("all", "inherit", "unset"));
