// coyote-mpi: RAII initialisation of MPI.
#pragma once

#include <mpi.h>

namespace coyote::mpi {

/// Options of Environment.
struct EnvironmentOptions {
    /// Thread support to request (and require) from MPI_Init_thread. The layer itself calls MPI from one
    /// thread only, so MPI_THREAD_FUNNELED suffices unless the application needs more.
    int thread_level = MPI_THREAD_FUNNELED;
    /// Run check_launch() (the silent-singleton check) after initialising.
    bool check_launch = true;
};

/// Initialises MPI with MPI_Init_thread, or adopts an MPI that is already initialised; finalises only what it
/// initialised. Throws coyote::Error if the provided thread level is lower than requested.
class Environment {
public:
    explicit Environment(int* argc = nullptr, char*** argv = nullptr, EnvironmentOptions options = {});
    explicit Environment(EnvironmentOptions options) : Environment(nullptr, nullptr, options) {}
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;
    Environment(Environment&&) = delete;
    Environment& operator=(Environment&&) = delete;
    /// Calls MPI_Finalize if this object initialised MPI and nobody finalised it yet.
    ~Environment();

    /// True if this object called MPI_Init_thread.
    bool owns() const noexcept { return owns_; }
    /// Thread level MPI provides.
    int thread_level() const noexcept { return provided_; }

private:
    bool owns_ = false;
    int provided_ = MPI_THREAD_SINGLE;
};

/// Human-readable name of an MPI thread level ("MPI_THREAD_FUNNELED", ...).
const char* thread_level_name(int level) noexcept;

}  // namespace coyote::mpi
