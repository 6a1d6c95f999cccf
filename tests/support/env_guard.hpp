// EnvGuard: an environment variable set (or unset) for a scope and restored after it; unit and MPI tests.
#pragma once

#include <cstdlib>
#include <string>

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

}  // namespace coyote_test
