// coyote-mpi benchmarks: the shared Google Benchmark main for single- and multi-rank runs and its helpers.
//
// Every benchmark binary links the static library built from this directory, which provides main():
//   * MPI is initialised once (MPI_Init_thread, FUNNELED); the binary checks its rank count;
//   * only rank 0 reports: the other ranks run the same benchmarks with null display and file reporters
//     (their --benchmark_out is redirected to /dev/null so that they never touch rank 0's file);
//   * the run's context (backend, ranks, nodes, wire, host, cores, NUMA nodes, load, library version, MPI
//     library) is added with benchmark::AddCustomContext;
//   * a benchmark that failed (fail(), verify()) makes the process exit non-zero on every rank.
//
// A binary declares itself with one `define_suite({...})` at namespace scope and registers its benchmarks
// in SuiteSpec::setup, after MPI is initialised. Multi-rank benchmarks time every iteration with
// timed_loop(): each rank measures its own wall time, the times are reduced with MPI MAX and the maximum is
// the iteration's manual time on every rank, so Google Benchmark chooses the same iteration count everywhere.
//
// Ratios: every ratio counter `ratio_vs_<baseline>` is (baseline time) / (coyote time) for the same work,
// both medians of per-iteration samples measured in the same run: above 1 coyote is faster (lower latency,
// higher throughput). The baseline of a size is registered (and so runs) right before the coyote benchmark
// of that size; when it was filtered out, the ratio counter is left out.
#pragma once

#include <mpi.h>

#include <benchmark/benchmark.h>

#include <coyote/cThread.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coyote::bench {

/// The MPI rank counts a suite runs with.
struct Ranks {
    int min = 1; ///< fewest ranks
    int max = 0; ///< most ranks (0: no limit)
};

/// What a benchmark binary is; declared once per binary with define_suite().
struct SuiteSpec {
    std::string name;      ///< suite name, e.g. "rdma" (context key "suite")
    Ranks ranks;           ///< rank counts the suite runs with
    std::string wire;      ///< context key "wire": how ranks exchange data (e.g. "shm", "shm+tcp", "none")
    /// Collective over all ranks, after MPI_Init: allocate, wire, and register the benchmarks
    /// (benchmark::RegisterBenchmark). An exception on any rank ends the run on every rank with exit code 1.
    std::function<void()> setup;
    /// Collective, after the run (may be empty). Resources may also be released by static destructors,
    /// but MPI objects must go here (MPI is finalised right after).
    std::function<void()> teardown;
};

/// Declares the binary's suite `spec` with its `setup` and `teardown` (see SuiteSpec; call once, from a
/// namespace-scope initialiser); returns true.
bool define_suite(SuiteSpec spec, std::function<void()> setup, std::function<void()> teardown = {});

/// A cThread on vFPGA 0 of device 0 with a source and a destination buffer of `bytes` each, pages of `type`
/// (the single-process suites' rig); the buffers are freed before the thread closes.
class LocalBuffers {
public:
    LocalBuffers(coyote::CoyoteAllocType type, uint32_t bytes);
    ~LocalBuffers();
    LocalBuffers(const LocalBuffers&) = delete;
    LocalBuffers& operator=(const LocalBuffers&) = delete;

    coyote::cThread& thread() { return *thread_; }
    uint8_t* src() const { return src_; }
    uint8_t* dst() const { return dst_; }

private:
    std::unique_ptr<coyote::cThread> thread_;
    uint8_t* src_ = nullptr;
    uint8_t* dst_ = nullptr;
};

/// MPI_COMM_WORLD rank and size of this process (valid in setup and in benchmarks).
int rank() noexcept;
int size() noexcept;

/// Adds (or overrides) a context entry of the report; call from setup.
void set_context(const std::string& key, const std::string& value);

/// Whether a barrier precedes each timed region.
/// (initiator: no barrier, and only rank 0's time counts: the other ranks serve its requests, and their clocks start
/// before rank 0's when an untimed handshake lets them out first. The untimed `after()` step, the program's own
/// handshake, runs before the ranks' times are reduced, so that a rank done early waits in that handshake as the
/// program it models does, not busy in an MPI collective while the initiator still needs its cores.)
enum class Sync { none, barrier, initiator };

/// Ends the benchmark with an error on this rank (SkipWithError) and makes the process exit non-zero.
/// Collective use only (every rank must reach the same decision; see verify()).
void fail(benchmark::State& state, const std::string& message);

/// True when COYOTE_BENCH_INJECT_CORRUPTION is on: suites then damage one received byte before verifying, so
/// that tests can check that a mismatch fails the run. A malformed value throws (checked before the run).
bool inject_corruption();

/// Collective check: true when `local_ok` holds on every rank; otherwise fails the benchmark on every rank
/// with "`what` failed on rank r" (r = highest failing rank) and prints `what` on each failing rank's stderr.
bool verify(benchmark::State& state, bool local_ok, const std::string& what);

namespace detail {
/// MAX-reduces {seconds, failure code} over all ranks (no communication with one rank).
void reduce_iteration(double& seconds, double& failed_rank);
void report_local_failure(const std::string& message);
/// Reports `message` and ends the whole job (MPI_Abort, exit code 3) instead of entering another collective: a
/// collective over MPI_COMM_WORLD could wait for a dead rank forever (mpirun --enable-recovery keeps the job).
[[noreturn]] void abort_lost_peer(const std::string& message);
/// Test hook (COYOTE_BENCH_DIE_AT=<rank>:<iteration>): that rank kills itself with SIGKILL at the start of that
/// timed iteration (counted over the whole run from 1). Inline-cheap when unset.
void maybe_die();
}  // namespace detail

/// Runs the benchmark loop: per iteration an optional barrier, then `body()` timed on every rank; the MAX of
/// the ranks' times is the iteration's manual time and is appended to `samples` (seconds). `body` returns
/// false (or throws) on a local failure: with one rank that fails the benchmark; with several it ends the whole
/// job (MPI_Abort, exit code 3), since the failure may be a lost peer that no collective could include.
/// `after()` runs untimed at the end of every iteration (e.g. to release what the iteration built); it must
/// not fail (an exception aborts the whole run).
/// `before()` runs untimed right before each timed `body()` (after the barrier), `after()` right after it.
/// Returns false when the benchmark failed. Use with ->UseManualTime().
template <typename Before, typename Body, typename After>
bool timed_loop(benchmark::State& state, Sync sync, std::vector<double>& samples, Before&& before, Body&& body,
                After&& after) {
    using Clock = std::chrono::steady_clock;
    const bool multi = size() > 1;
    samples.clear();
    for (auto _ : state) {
        if (sync == Sync::barrier && multi) MPI_Barrier(MPI_COMM_WORLD);
        detail::maybe_die();
        bool ok = false;
        std::string error;
        before();
        const auto t0 = Clock::now();
        try {
            ok = body();
            if (!ok) error = "data path failed or timed out";
        } catch (const std::exception& e) {
            error = e.what();
        }
        // A local failure with several ranks may be a lost peer (an error naming it, or a data path that timed
        // out waiting for it): the reduction below would then wait for the dead rank forever, so the job ends here.
        if (!ok && multi) detail::abort_lost_peer(error);
        double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (sync == Sync::initiator && rank() != 0) seconds = 0.0;
        double failed = ok ? 0.0 : static_cast<double>(rank() + 1);
        if (!ok) detail::report_local_failure(error);
        auto untimed = [&] {
            try {
                after();
            } catch (const std::exception& e) { // ranks would diverge: end the run
                detail::report_local_failure(std::string("untimed step failed: ") + e.what());
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        };
        const bool after_first = sync == Sync::initiator && multi; // ok here: a failure with several ranks aborted
        if (after_first) untimed();
        if (multi) detail::reduce_iteration(seconds, failed);
        if (failed == 0.0 && !after_first) untimed();
        if (failed != 0.0) {
            fail(state, ok ? "iteration failed on rank " + std::to_string(static_cast<int>(failed) - 1) : error);
            return false;
        }
        state.SetIterationTime(seconds);
        if (samples.size() < (std::size_t{1} << 22)) samples.push_back(seconds);
    }
    return !state.error_occurred();
}

template <typename Body, typename After>
bool timed_loop(benchmark::State& state, Sync sync, std::vector<double>& samples, Body&& body, After&& after) {
    return timed_loop(state, sync, samples, [] {}, std::forward<Body>(body), std::forward<After>(after));
}

template <typename Body>
bool timed_loop(benchmark::State& state, Sync sync, std::vector<double>& samples, Body&& body) {
    return timed_loop(state, sync, samples, [] {}, std::forward<Body>(body), [] {});
}

/// The loop figure perftest and OSU report, next to the per-iteration samples of timed_loop: after a barrier,
/// `body` runs `iters` times back to back and is timed once; the MAX over the ranks, divided by `iters` and
/// `divisor` (2 for the half round trip of a ping-pong), becomes counter "loop_us". `iters` must be the same on
/// every rank (e.g. state.iterations()). Returns false (the benchmark failed on every rank) when `body` failed.
template <typename Body>
bool loop_counter(benchmark::State& state, int64_t iters, double divisor, Body&& body) {
    using Clock = std::chrono::steady_clock;
    if (size() > 1) MPI_Barrier(MPI_COMM_WORLD);
    bool ok = true;
    std::string error = "data path failed or timed out";
    const auto t0 = Clock::now();
    try {
        for (int64_t i = 0; i < iters && ok; ++i) ok = body();
    } catch (const std::exception& e) {
        ok = false;
        error = e.what();
    }
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    double failed = ok ? 0.0 : static_cast<double>(rank() + 1);
    if (!ok) detail::report_local_failure("loop figure: " + error);
    if (size() > 1) detail::reduce_iteration(seconds, failed);
    if (failed != 0.0) {
        fail(state, "loop figure: iteration failed on rank " + std::to_string(static_cast<int>(failed) - 1));
        return false;
    }
    state.counters["loop_us"] = seconds * 1e6 / static_cast<double>(iters) / divisor;
    return true;
}

/// Polls `t` until it counts `target` completions of the class of `op`; false after 10 s, having reported what
/// it waited for and what it saw. Inline: it runs inside the timed region.
inline bool wait_completed(const coyote::cThread& t, coyote::CoyoteOper op, uint32_t target) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (unsigned spins = 1; t.checkCompleted(op) < target; ++spins) {
        if ((spins & 0x3FFu) == 0 && Clock::now() > deadline) [[unlikely]] {
            detail::report_local_failure("waited 10 s for " + std::to_string(target) +
                                         " completions of CoyoteOper " + std::to_string(static_cast<int>(op)) +
                                         " on ctid " + std::to_string(t.getCtid()) + "; the counter stands at " +
                                         std::to_string(t.checkCompleted(op)));
            return false;
        }
    }
    return true;
}

/// Median of `samples` (nearest rank); NaN when empty.
double median(const std::vector<double>& samples);

/// Adds p50_us / p95_us / p99_us: percentiles of `samples` (seconds) divided by `divisor` (e.g. 2 for the half
/// round trip of a ping-pong, or the number of messages per iteration).
void latency_counters(benchmark::State& state, const std::vector<double>& samples, double divisor = 1.0);

/// Sets bytes_per_second (unless `bytes` is 0) and items_per_second (messages/s) from `bytes` and `messages`
/// per iteration.
void throughput_counters(benchmark::State& state, int64_t bytes, int64_t messages);

/// Remembers a baseline's median time for the same unit of work (key chosen by the suite, e.g. "mpi_put/64").
void record_baseline(const std::string& key, double seconds);

/// Adds counter `name` = baseline time / `seconds` when baseline `key` was measured in this run; returns it
/// (NaN when it was not measured).
double ratio_counter(benchmark::State& state, const std::string& name, const std::string& key, double seconds);

}  // namespace coyote::bench
