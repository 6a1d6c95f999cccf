// The benchmarks' CPU accounting (benchmarks/support/cpu_account.hpp): a run that a thread of our own process
// slowed down is never called foreign; one that another process slowed down on the same CPU is.
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support/cpu_account.hpp"

namespace {

namespace cb = coyote::bench;
using Clock = std::chrono::steady_clock;

void spin_for(std::chrono::milliseconds d) {
    const auto end = Clock::now() + d;
    while (Clock::now() < end) {
    }
}

/// Pins the calling process to its first allowed CPU (threads and children started later inherit it).
void pin_to_one_cpu() {
    cpu_set_t set;
    ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
    unsigned cpu = 0;
    while (!CPU_ISSET(cpu, &set)) ++cpu;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ASSERT_EQ(::sched_setaffinity(0, sizeof set, &set), 0);
}

/// Spins 200 ms on this thread while `rival` competes for the same CPU; returns the run's accounting and the
/// time it lost (wall time minus its own CPU time).
cb::RunCpu contended_run(double& lost_s) {
    const cb::CpuSnapshot a = cb::cpu_snapshot();
    const auto t0 = Clock::now();
    spin_for(std::chrono::milliseconds(200));
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const cb::CpuSnapshot b = cb::cpu_snapshot();
    lost_s = wall - static_cast<double>(b.thread_cpu_ns - a.thread_cpu_ns) * 1e-9;
    return cb::run_cpu(a, b);
}

}  // namespace

TEST(CpuAccount, OwnThreadTakingTheCoreIsNotForeign) {
    pin_to_one_cpu();
    std::atomic<bool> stop{false};
    std::thread rival([&] {
        while (!stop.load(std::memory_order_relaxed)) {
        }
    });
    double lost = 0;
    const cb::RunCpu c = contended_run(lost);
    stop = true;
    rival.join();
    ASSERT_GT(lost, 0.02) << "the rival thread did not share the CPU";
    EXPECT_GT(c.waited_s, 0.5 * lost);
    EXPECT_GT(c.others_cpu_s, 0.5 * c.waited_s);
    EXPECT_FALSE(cb::preempted_by_others({{c}}, 0, lost, true));
}

TEST(CpuAccount, AnotherProcessTakingTheCoreIsForeign) {
    pin_to_one_cpu();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        spin_for(std::chrono::milliseconds(5000)); // killed long before
        ::_exit(0);
    }
    double lost = 0;
    const cb::RunCpu c = contended_run(lost);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_GT(lost, 0.02) << "the rival process did not share the CPU";
    EXPECT_GT(c.waited_s, 0.5 * lost);
    EXPECT_LT(c.others_cpu_s, 0.1 * c.waited_s);
    EXPECT_TRUE(cb::preempted_by_others({{c}}, 0, lost, true));
    EXPECT_FALSE(cb::preempted_by_others({{c}}, 0, lost, false)) << "ranks sharing CPUs: never foreign";
}
