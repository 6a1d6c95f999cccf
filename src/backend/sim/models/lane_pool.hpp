// coyote-mpi sim backend: the threads that share a built-in model's word operations on large inputs. The calling
// thread (the one driving the sim) always works through the pieces itself; helper threads that are awake claim
// pieces too. The caller never waits for a helper to start: it waits only for pieces a helper has claimed, so a
// spare core speeds a model up and a busy one costs a wake-up. How many threads: COYOTE_SIM_MODEL_THREADS.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coyote::detail::sim::lanes {

/// One piece of a job: the work on bytes [from, to) of the job's range, with the caller's context.
using PieceFn = void (*)(const void* ctx, std::size_t from, std::size_t to) noexcept;

/// Runs `fn` over [0, n) in pieces of `grain` bytes (the last may be shorter) on the calling thread and on the idle
/// helpers of this process; returns when every piece has run. The pieces must be independent of each other. Runs
/// on the caller alone below two pieces, with one thread configured, or while another thread's job is running.
/// Throws when COYOTE_SIM_MODEL_THREADS is malformed (before any piece has run).
void parallel_for(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx);

/// The threads parallel_for uses now, the caller included: COYOTE_SIM_MODEL_THREADS, or when unset the CPUs of
/// the process's affinity mask shared among the node's ranks (1 .. 4).
unsigned model_threads();

/// The helper threads started in this process so far (they sleep while no job runs).
unsigned helpers_started();

/// What the model threads of this process did so far.
struct PoolStats {
    uint64_t jobs = 0;          ///< jobs shared (run with helpers configured)
    uint64_t pieces = 0;        ///< their pieces
    uint64_t helper_pieces = 0; ///< pieces run by helpers
};
PoolStats pool_stats();

}  // namespace coyote::detail::sim::lanes
