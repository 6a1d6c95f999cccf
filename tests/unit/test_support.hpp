// Helpers shared by the unit tests: scoped environment variables (EnvGuard, the sim defaults), error capture,
// bounded waits.
#pragma once

#include "support/env_guard.hpp"

#include <coyote/cThread.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace coyote_test {

/// The sim backend with its built-in shell for the scope: COYOTE_BACKEND=sim, COYOTE_SIM_SHELL and
/// COYOTE_SIM_CONFIG unset (the first member of the sim test fixtures).
struct SimDefaults {
    EnvGuard backend{"COYOTE_BACKEND", "sim"};
    EnvGuard shell{"COYOTE_SIM_SHELL", nullptr};
    EnvGuard config{"COYOTE_SIM_CONFIG", nullptr};
};

/// Fixture of the sim tests on the default (passthrough) model: SimDefaults and COYOTE_SIM_MODEL unset.
class SimTest : public ::testing::Test {
protected:
    SimDefaults sim_defaults;
    EnvGuard model{"COYOTE_SIM_MODEL", nullptr};
};

/// Runs `fn`; returns the code value and message of the coyote::Error it throws, or {0, "no error"}.
template <typename Fn>
std::pair<int, std::string> error_of(Fn&& fn) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        return {e.code().value(), e.what()};
    }
    return {0, "no error"};
}

/// Waits (at most 20 s) until `pred` holds.
template <typename Pred>
bool eventually(Pred&& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
}

/// Waits (bounded) until `t` has completed `n` operations of the class of `op`.
inline bool wait_completed(coyote::cThread& t, coyote::CoyoteOper op, uint32_t n) {
    return eventually([&] { return t.checkCompleted(op) >= n; });
}

}  // namespace coyote_test
