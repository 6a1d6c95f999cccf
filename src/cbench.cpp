// coyote-mpi: cBench statistics.
#include <coyote/cBench.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>

#include <coyote/error.hpp>

namespace coyote {

namespace detail {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// Nearest-rank percentile of an already sorted, non-empty range.
double nearest_rank_sorted(std::span<const double> sorted_samples, double p) {
    const auto n = sorted_samples.size();
    // p * n is exact for integral p and any realistic n, so ceil() does not round 95 * 100 / 100 up to 96.
    const double rank = std::ceil(p * static_cast<double>(n) / 100.0);
    std::size_t idx = rank < 1.0 ? 0 : static_cast<std::size_t>(rank) - 1;
    if (idx >= n) idx = n - 1;
    return sorted_samples[idx];
}

void check_percentile(double p) {
    if (std::isnan(p) || p < 0.0 || p > 100.0)
        throw_error(Errc::invalid_argument, "cBench percentile",
                    "percentile must be within [0, 100], got " + std::to_string(p));
}

}  // namespace

double nearest_rank_percentile(std::span<const double> samples, double p) {
    check_percentile(p);
    if (samples.empty()) return k_nan;
    std::vector<double> copy(samples.begin(), samples.end());
    std::sort(copy.begin(), copy.end());
    return nearest_rank_sorted(copy, p);
}

}  // namespace detail

namespace {

double percentile_or_nan(const std::vector<double>& sorted_samples, double p) {
    if (sorted_samples.empty()) return std::numeric_limits<double>::quiet_NaN();
    return detail::nearest_rank_sorted(sorted_samples, p);
}

}  // namespace

cBench::cBench(unsigned int runs, unsigned int warmups) : n_runs(runs), n_warmups(warmups) {}

void cBench::commit(std::vector<double>&& runs) {
    measurements = std::move(runs);
    sorted = measurements;
    std::sort(sorted.begin(), sorted.end());
}

double cBench::getAvg() const {
    if (measurements.empty()) return std::numeric_limits<double>::quiet_NaN();
    return std::accumulate(measurements.begin(), measurements.end(), 0.0) / static_cast<double>(measurements.size());
}

double cBench::getMin() const { return percentile_or_nan(sorted, 0.0); }
double cBench::getMax() const { return percentile_or_nan(sorted, 100.0); }
double cBench::getP25() const { return percentile_or_nan(sorted, 25.0); }
double cBench::getP50() const { return percentile_or_nan(sorted, 50.0); }
double cBench::getP75() const { return percentile_or_nan(sorted, 75.0); }
double cBench::getP95() const { return percentile_or_nan(sorted, 95.0); }
double cBench::getP99() const { return percentile_or_nan(sorted, 99.0); }

}  // namespace coyote
