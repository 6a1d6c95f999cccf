// The benchmarks' CPU accounting (benchmarks/support/cpu_account.hpp): a run that a thread of our own process
// slowed down is never called foreign; one that another process slowed down on the same CPU is, and so is one whose
// timing thread was held off its CPU without waiting for it (a vCPU its host did not run).
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <string>
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

double thread_cpu_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
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

/// Spins `d` on this thread; returns the time it lost meanwhile (wall time minus this thread's CPU time): what
/// other threads or processes on its CPU took.
double lost_while_spinning(std::chrono::milliseconds d) {
    const auto t0 = Clock::now();
    const double cpu0 = thread_cpu_s();
    spin_for(d);
    return std::chrono::duration<double>(Clock::now() - t0).count() - (thread_cpu_s() - cpu0);
}

/// Spins 200 ms on this thread while a rival (started before) competes for the same CPU; returns the run's
/// accounting and the time it lost.
cb::RunCpu contended_run(double& lost_s) {
    cb::ThreadAccounts threads;
    threads.refresh();
    const cb::CpuSnapshot a = threads.snapshot();
    lost_s = lost_while_spinning(std::chrono::milliseconds(200));
    return cb::ThreadAccounts::cost(a, threads.snapshot());
}

/// A helper thread of this process that burns `cpu_s` of its own CPU time when started, then lives on (so that the
/// accounting still lists it) until the object goes.
class CpuBurner {
public:
    explicit CpuBurner(double cpu_s)
        : thread_([this, cpu_s] {
              while (step_.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
              const double end = thread_cpu_s() + cpu_s;
              while (thread_cpu_s() < end) {
              }
              step_ = 2;
              while (step_.load() != 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }) {}
    CpuBurner(const CpuBurner&) = delete;
    CpuBurner& operator=(const CpuBurner&) = delete;
    ~CpuBurner() {
        step_ = 3;
        thread_.join();
    }
    /// Names the thread (as the runtime names its own).
    void name(const char* n) { ASSERT_EQ(::pthread_setname_np(thread_.native_handle(), n), 0); }
    /// Starts the burn and sleeps (in steps of `poll`) until it is done.
    void burn(std::chrono::milliseconds poll) {
        step_ = 1;
        while (step_.load() != 2) std::this_thread::sleep_for(poll);
    }

private:
    std::atomic<int> step_{0};
    std::thread thread_;
};

}  // namespace

TEST(CpuAccount, OwnThreadTakingTheCoreIsNotForeign) {
    pin_to_one_cpu();
    // What it asserts holds only where no other process wants this CPU: on a busy machine their share of it is
    // (rightly) counted foreign.
    if (const double other = lost_while_spinning(std::chrono::milliseconds(100)); other > 0.005)
        GTEST_SKIP() << "other processes took " << other * 1e3 << " ms of 100 ms on this CPU: the machine is busy";
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
    EXPECT_LT(c.foreign_wait_s, 0.1 * lost);
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
    EXPECT_GT(c.foreign_wait_s, 0.5 * lost);
    EXPECT_TRUE(cb::preempted_by_others({{c}}, 0, lost, true));
    EXPECT_FALSE(cb::preempted_by_others({{c}}, 0, lost, false)) << "ranks sharing CPUs: never foreign";
}

TEST(CpuAccount, AHelperThreadWaitingBehindAnotherProcessIsForeign) {
    // The waiting thread need not be the timing one: here a helper of this process waits for the CPU another
    // process holds while the main thread sleeps (a passive rank's wire thread, its main thread in connSync).
    pin_to_one_cpu();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        spin_for(std::chrono::milliseconds(5000));
        ::_exit(0);
    }
    auto helper = std::make_unique<CpuBurner>(0.1); // 100 ms of CPU, which the rival process stretches
    cb::ThreadAccounts threads;
    threads.refresh();
    const cb::CpuSnapshot a = threads.snapshot();
    const auto t0 = Clock::now();
    helper->burn(std::chrono::milliseconds(1));
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const cb::RunCpu c = cb::ThreadAccounts::cost(a, threads.snapshot());
    helper.reset();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_GT(wall, 0.12) << "the rival process did not share the CPU";
    EXPECT_GT(c.foreign_wait_s, 0.5 * (wall - 0.1));
}

TEST(CpuAccount, WhatTheTimingThreadDidIsMeasured) {
    // A slow run's explanation: the timing thread's sleeps, CPU time and wait for a CPU, and its process's other
    // threads' CPU time.
    auto helper = std::make_unique<CpuBurner>(0.02);
    helper->name("coyote-lanes");
    cb::ThreadAccounts threads;
    threads.refresh();
    const cb::CpuSnapshot a = threads.snapshot();
    helper->burn(std::chrono::milliseconds(5));
    const cb::CpuSnapshot b = threads.snapshot();
    spin_for(std::chrono::milliseconds(30));
    const cb::CpuSnapshot c = threads.snapshot();
    helper.reset();

    const cb::RunCpu slept = cb::ThreadAccounts::cost(a, b);
    EXPECT_GE(slept.self_sleeps, 1.0);
    EXPECT_GE(slept.wall_s, 0.02);
    EXPECT_LT(slept.self_cpu_s, 0.5 * slept.wall_s);
    EXPECT_GE(slept.others_cpu_s, 0.015) << "the helper's 20 ms of CPU";
    EXPECT_NE(slept.describe().find("slept "), std::string::npos) << slept.describe();
    EXPECT_GE(slept.top_other_cpu_s, 0.015);
    EXPECT_NE(slept.describe().find("most: coyote-lanes"), std::string::npos) << slept.describe();
    EXPECT_EQ(slept.frozen_s, 0.0) << "a thread that slept: its time off the CPU is not known";

    const cb::RunCpu spun = cb::ThreadAccounts::cost(b, c);
    EXPECT_EQ(spun.self_sleeps, 0.0);
    EXPECT_GE(spun.wall_s, 0.03);
    // Spinning, the thread either ran or waited for its CPU.
    EXPECT_GT(spun.self_cpu_s + spun.self_wait_s, 0.8 * spun.wall_s) << spun.describe();
    EXPECT_LT(spun.others_cpu_s, 0.5 * spun.wall_s);
    EXPECT_LT(spun.frozen_s, 0.5 * spun.wall_s) << spun.describe();
    EXPECT_NE(spun.describe().find("held off its CPU"), std::string::npos) << spun.describe();
}

TEST(CpuAccount, TheWaitOurOtherThreadsCannotHaveCausedIsForeign) {
    // Snapshots of two threads: the timing thread waited 1.5 ms for its CPU while the other ran 0.2 ms; 1.3 ms of the
    // wait was someone else's. When the other ran as long as the wait, none was.
    cb::CpuSnapshot a;
    a.delay_ns = {1'000'000, 0};
    a.cpu_ns = {5'000'000, 1'000'000};
    a.kind = {0, 1};
    a.self = 0;
    a.self_cpu_ns = 5'000'000;
    a.self_sleeps = 3;
    a.wall_ns = 100'000'000;
    cb::CpuSnapshot b = a;
    b.delay_ns = {2'500'000, 0};
    b.cpu_ns = {5'300'000, 1'200'000};
    b.self_cpu_ns = 5'300'000;
    b.wall_ns = 102'000'000;
    const cb::RunCpu some = cb::ThreadAccounts::cost(a, b);
    EXPECT_NEAR(some.foreign_wait_s, 0.0013, 1e-9);
    EXPECT_TRUE(cb::preempted_by_others({{some}}, 0, 0.002, true));
    EXPECT_NEAR(some.top_other_cpu_s, 0.0002, 1e-9);
    EXPECT_NE(some.describe().find("most: coyote-vfpga"), std::string::npos) << some.describe();
    b.cpu_ns = {5'300'000, 2'500'000};
    const cb::RunCpu ours = cb::ThreadAccounts::cost(a, b);
    EXPECT_EQ(ours.foreign_wait_s, 0.0);
    EXPECT_FALSE(cb::preempted_by_others({{ours}}, 0, 0.002, true));
}

TEST(CpuAccount, ATimingThreadHeldOffItsCpuIsForeign) {
    // Snapshots as a vCPU that its host stopped leaves them: 2 ms of wall time, 0.4 ms run, 0.1 ms waited for a
    // CPU, no sleep. The 1.5 ms are the machine's, pinned ranks or not; after a sleep nothing is concluded.
    cb::CpuSnapshot a;
    a.delay_ns = {1'000'000};
    a.cpu_ns = {5'000'000};
    a.kind = {0};
    a.self = 0;
    a.self_cpu_ns = 5'000'000;
    a.self_sleeps = 7;
    a.wall_ns = 100'000'000;
    cb::CpuSnapshot b = a;
    b.delay_ns = {1'100'000};
    b.cpu_ns = {5'400'000};
    b.self_cpu_ns = 5'400'000;
    b.wall_ns = 102'000'000;
    const cb::RunCpu held = cb::ThreadAccounts::cost(a, b);
    EXPECT_NEAR(held.frozen_s, 0.0015, 1e-9);
    EXPECT_TRUE(cb::preempted_by_others({{held}}, 0, 0.002, false));
    EXPECT_TRUE(cb::preempted_by_others({{cb::RunCpu{}}, {held}}, 0, 0.003, false)) << "any rank's";
    EXPECT_FALSE(cb::preempted_by_others({{held}}, 0, 0.004, true)) << "less than half the time lost";
    b.self_sleeps = 8;
    const cb::RunCpu slept = cb::ThreadAccounts::cost(a, b);
    EXPECT_EQ(slept.frozen_s, 0.0);
    EXPECT_FALSE(cb::preempted_by_others({{slept}}, 0, 0.002, true));
}
