// Clocks of the sim's polling and waiting loops, and their pause step.
#pragma once

#include <time.h>

#include <cstdint>

namespace coyote::detail::sim {

/// CLOCK_MONOTONIC in nanoseconds (vDSO: tens of nanoseconds). For spin budgets of microseconds; the stall doctor's
/// coarse clock (diag::monotonic_ns) has timer-tick resolution.
inline int64_t precise_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: timer-tick resolution (a few ms), what the per-post liveness period needs,
/// at a fraction of steady_clock's cost (measured 7 vs 37 ns per call on the development VM). The same clock as the
/// stall doctor's, which compares the NIC's refusal times with its own.
inline int64_t coarse_now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// A cheap time stamp: the TSC on x86-64 (about 10 ns to read on the development VM; one clock for every core and
/// process of the host), else CLOCK_MONOTONIC nanoseconds. For telling a polling loop from a single poll.
inline uint64_t tick_stamp() noexcept {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return static_cast<uint64_t>(precise_ns());
#endif
}

/// One step of a spin-wait: a pause instruction on x86 (it lets the sibling hyperthread run and eases the exit
/// from the loop), nothing elsewhere.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

}  // namespace coyote::detail::sim
