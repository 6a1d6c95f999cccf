// Helpers shared by the unit tests: scoped environment variables, error capture, bounded waits.
#pragma once

#include <coyote/cThread.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

namespace coyote_test {

/// Sets (or, with null, unsets) an environment variable for the scope.
struct EnvGuard {
    std::string name, old;
    bool had;
    EnvGuard(const char* n, const char* v) : name(n) {
        const char* o = std::getenv(n);
        had = o != nullptr;
        if (had) old = o;
        if (v != nullptr)
            ::setenv(n, v, 1);
        else
            ::unsetenv(n);
    }
    EnvGuard(const EnvGuard&) = delete;
    EnvGuard& operator=(const EnvGuard&) = delete;
    ~EnvGuard() {
        if (had)
            ::setenv(name.c_str(), old.c_str(), 1);
        else
            ::unsetenv(name.c_str());
    }
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
