// coyote-mpi perftest-style tools: latency and bandwidth figures as perftest reports them.
#include <algorithm>
#include <cmath>

#include "perftest/perftest.hpp"

namespace coyote::tools::perftest {

namespace {

/// The value below which `q` of the sorted samples lie (nearest rank).
double percentile(const std::vector<double>& sorted, double q) {
    const auto n = sorted.size();
    auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    rank = std::clamp<size_t>(rank, 1, n);
    return sorted[rank - 1];
}

}  // namespace

void latency_stats(Result& r, std::vector<double>& samples, double loop_us, bool halve) {
    if (samples.empty()) return;
    const double f = halve ? 0.5 : 1.0;
    for (double& s : samples) s *= f;
    std::sort(samples.begin(), samples.end());
    r.t_min = samples.front();
    r.t_max = samples.back();
    r.t_typical = samples[samples.size() / 2];
    // t_avg is the loop's figure (total time / iterations), as OSU and perftest's averages; the samples give
    // the distribution only.
    r.t_avg = loop_us * f / static_cast<double>(r.iters);
    double mean = 0;
    for (double s : samples) mean += s;
    mean /= static_cast<double>(samples.size());
    double var = 0;
    for (double s : samples) var += (s - mean) * (s - mean);
    r.t_stdev = std::sqrt(var / static_cast<double>(samples.size()));
    r.p99 = percentile(samples, 0.99);
    r.p999 = percentile(samples, 0.999);
    r.measured = true;
}

void bandwidth_stats(Result& r, const std::vector<double>& post_us, double loop_us, bool gbits, size_t tx_depth) {
    if (loop_us <= 0 || r.iters == 0) return;
    // perftest: MB = 2^20 bytes; Gb/sec = 10^9 bits.
    const double unit = gbits ? 125000000.0 : 1048576.0;
    const double bytes = static_cast<double>(r.bytes);
    r.bw_avg = bytes * r.iters / (loop_us * 1e-6) / unit;
    r.msg_rate = r.iters / loop_us;
    // Peak: the best rate over any window of w consecutive posts once the command FIFO is full (from then on
    // completions pace the posts), never below the average; the average when there are too few such posts.
    const size_t first = std::min(tx_depth, post_us.size());
    const size_t paced = post_us.size() - first;
    const size_t w = std::min<size_t>(paced > 1 ? paced - 1 : 0, 128);
    double peak = r.bw_avg;
    for (size_t i = first + w; w > 0 && i < post_us.size(); ++i) {
        const double dt = post_us[i] - post_us[i - w];
        if (dt > 0) peak = std::max(peak, bytes * static_cast<double>(w) / (dt * 1e-6) / unit);
    }
    r.bw_peak = peak;
    r.measured = true;
}

}  // namespace coyote::tools::perftest
