// coyote-mpi: cBench, Coyote's micro-benchmark helper (repeated timed runs with percentile statistics).
#pragma once

#include <chrono>
#include <span>
#include <vector>

namespace coyote {

namespace detail {

/// Nearest-rank percentile of `samples` (any order): the smallest sample such that at least `p` percent
/// of the samples are <= it, i.e. sorted[ceil(p * n / 100) - 1], with rank 0 taken as 1 (p = 0 gives the
/// minimum, p = 100 the maximum). Returns NaN when `samples` is empty. Throws coyote::Error
/// (invalid_argument) when `p` is NaN or outside [0, 100].
double nearest_rank_percentile(std::span<const double> samples, double p);

}  // namespace detail

/// Runs a function `n_warmups + n_runs` times and keeps the duration of the last `n_runs`, in nanoseconds.
///
/// Every statistic is in nanoseconds. Percentiles use the nearest-rank method (see
/// detail::nearest_rank_percentile). With no recorded run (n_runs = 0, or before the first execute) every
/// statistic is NaN and getAll() is empty.
class cBench {
public:
    /// `n_runs` timed runs preceded by `n_warmups` untimed ones.
    explicit cBench(unsigned int n_runs = 1000, unsigned int n_warmups = 100);

    /// Runs `prep_func(prep_args...)` (untimed) and then `bench_func(bench_args...)` (timed) n_warmups + n_runs
    /// times; only the n_runs timed runs are recorded. Replaces the results of any earlier execute. If a
    /// function throws, the exception propagates and the results of the previous execute are kept.
    ///
    /// As in Coyote, `bench_args` are never deduced: the usual forms are `execute(bench_fn, prep_fn)` and
    /// `execute(bench_fn, prep_fn, prep_args...)`; bench arguments need the bench function's type and theirs
    /// spelled out, e.g. `execute<decltype(fn), int>(fn, 5, prep_fn)`.
    template <class BenchFunc, typename... BenchArgs, class PrepFunc, typename... PrepArgs>
    void execute(BenchFunc const& bench_func, BenchArgs... bench_args, PrepFunc const& prep_func,
                 PrepArgs... prep_args) {
        std::vector<double> runs;
        runs.reserve(n_runs);
        for (unsigned int i = 0; i < n_warmups; ++i) {
            prep_func(prep_args...);
            bench_func(bench_args...);
        }
        for (unsigned int i = 0; i < n_runs; ++i) {
            prep_func(prep_args...);
            auto const start = clock::now();
            bench_func(bench_args...);
            auto const stop = clock::now();
            runs.push_back(to_ns(stop - start));
        }
        commit(std::move(runs));
    }

    /// Same without a preparation step (coyote-mpi extension).
    template <class BenchFunc>
    void execute(BenchFunc const& bench_func) {
        execute(bench_func, [] {});
    }

    /// Durations of the recorded runs in the order they ran (n_runs entries after execute).
    const std::vector<double>& getAll() const noexcept { return measurements; }

    /// Arithmetic mean.
    double getAvg() const;
    /// Shortest run.
    double getMin() const;
    /// Longest run.
    double getMax() const;
    /// 25th percentile (nearest rank).
    double getP25() const;
    /// Median (nearest rank).
    double getP50() const;
    /// 75th percentile (nearest rank).
    double getP75() const;
    /// 95th percentile (nearest rank).
    double getP95() const;
    /// 99th percentile (nearest rank).
    double getP99() const;

    /// Number of timed runs per execute.
    unsigned int getRuns() const noexcept { return n_runs; }
    /// Number of untimed warm-up runs per execute.
    unsigned int getWarmups() const noexcept { return n_warmups; }

private:
    using clock = std::chrono::steady_clock;

    static double to_ns(clock::duration d) noexcept {
        return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
    }
    /// Stores the runs of one execute and the sorted copy the statistics read.
    void commit(std::vector<double>&& runs);

    unsigned int n_runs;
    unsigned int n_warmups;
    std::vector<double> measurements;
    std::vector<double> sorted;
};

}  // namespace coyote
