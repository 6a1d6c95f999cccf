#include <coyote/mpi/environment.hpp>

#include <coyote/mpi/bootstrap.hpp>
#include <coyote/mpi/communicator.hpp>

#include <string>

#include "bootstrap/mpi_state.hpp"

namespace coyote::mpi {

const char* thread_level_name(int level) noexcept {
    switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
    default: return "unknown MPI thread level";
    }
}

Environment::Environment(int* argc, char*** argv, EnvironmentOptions options) {
    if (detail::mpi_finalized())
        throw_error(Errc::mpi, "Environment", "MPI was already finalised; it cannot be initialised again");
    const int level = options.thread_level;
    if (level != MPI_THREAD_SINGLE && level != MPI_THREAD_FUNNELED && level != MPI_THREAD_SERIALIZED &&
        level != MPI_THREAD_MULTIPLE)
        throw_error(Errc::invalid_argument, "Environment",
                    "EnvironmentOptions::thread_level " + std::to_string(level) +
                        " is not an MPI thread level (MPI_THREAD_SINGLE, _FUNNELED, _SERIALIZED or _MULTIPLE)");
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) {
        check_mpi(MPI_Query_thread(&provided_), "MPI_Query_thread");
    } else {
        check_mpi(MPI_Init_thread(argc, argv, options.thread_level, &provided_), "MPI_Init_thread");
        owns_ = true;
    }
    try {
        if (provided_ < options.thread_level)
            throw_error(Errc::mpi, owns_ ? "MPI_Init_thread" : "MPI_Query_thread",
                        std::string("MPI provides ") + thread_level_name(provided_) + " but " +
                            thread_level_name(options.thread_level) +
                            " was requested (EnvironmentOptions::thread_level)");
        if (options.check_launch) check_launch();
    } catch (...) {
        if (owns_) MPI_Finalize();
        throw;
    }
}

Environment::~Environment() {
    if (!owns_) return;
    if (!detail::mpi_finalized()) MPI_Finalize();
}

}  // namespace coyote::mpi
