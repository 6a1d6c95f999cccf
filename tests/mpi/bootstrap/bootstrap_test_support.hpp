// Shared by the bootstrap tests: a bounded wait for completions that yields the CPU (ranks oversubscribe the cores).
#pragma once

#include <coyote/cThread.hpp>

#include <sched.h>

#include <chrono>
#include <cstdint>

namespace coyote_test {

/// Waits until `thread`'s count for `oper` reaches `n` (bounded: 60 s; yields); false on timeout.
inline bool wait_count(coyote::cThread& thread, coyote::CoyoteOper oper, uint32_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (thread.checkCompleted(oper) < n) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        ::sched_yield();
    }
    return true;
}

}  // namespace coyote_test
