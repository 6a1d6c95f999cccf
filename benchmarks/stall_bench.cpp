// stall suite: the stall doctor's cost on the polling hot path, doctor on and off alternated in one process.
//
//   doctor_cost/<n>  per iteration three timed blocks of n polls each, in a rotating order:
//                      device   the backend's poll alone (what checkCompleted calls): the floor
//                      off      cThread::checkCompleted of a cThread opened with COYOTE_STALL_WARN_MS=0
//                      on       the same on a cThread with the doctor on (default COYOTE_STALL_WARN_MS)
//                    Two such off/on pairs are opened (off, on, on, off: ctids 0..3) and used in turn, so that
//                    neither side always gets the lower ctid or the first allocation.
//
// Counters: ns_per_poll_{device,off,on} = total time / total polls of each variant; ratio_vs_doctor_off = total
// off time / total on time (1.0: the doctor costs nothing measurable; it includes the doctor's periodic checks)
// over the iterations none of whose blocks took more than 1.5x its variant's median (a block the scheduler
// interrupted says nothing about the doctor; kept_fraction says how many stayed); ratio_p10 / ratio_median /
// ratio_p90 spread the per-iteration ratios (adjacent blocks, same machine state); ratio_vs_device_poll = device /
// on, over the same iterations. Every block checks that the polled value is the ctid's real count.
//
// Backend: COYOTE_BACKEND (sim by default). The sim's polls sleep once a ctid saw 128 polls without a completion
// (idle polls give their core away); to time the spinning regime, sim blocks are bursts of 64 polls, each followed
// by a clearCompleted (device: clear_completed) that restarts the idle count; the clear is in every variant. On
// hw run it on the fake driver in sink mode: LD_PRELOAD=<build>/tools/fake_driver/libcoyote-fake-driver.so
// COYOTE_FAKE_SINK=1 COYOTE_BACKEND=hw stall_bench (no clears: hw polls never sleep).
#include "support/bench_support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/device.hpp"
#include "diag/stall.hpp"

namespace {

using coyote::CoyoteOper;
using Clock = std::chrono::steady_clock;
namespace cb = coyote::bench;

constexpr int64_t k_polls[] = {1024, 65536};
/// Sim: polls between two clears (below the sim's 128 idle polls before a poller sleeps).
constexpr int64_t k_burst = 64;
constexpr CoyoteOper k_oper = CoyoteOper::LOCAL_TRANSFER;

enum Variant : size_t { device = 0, off = 1, on = 2 };
constexpr std::array<const char*, 3> k_names = {"device", "off", "on"};

struct Pair {
    std::unique_ptr<coyote::cThread> off, on;
};
struct Rig {
    std::array<Pair, 2> pairs;
    std::shared_ptr<coyote::detail::Device> dev;
    bool sim = true;
};
Rig g;

/// A cThread with the doctor off (`warn_ms` "0") or on (unset: the default).
std::unique_ptr<coyote::cThread> open_polled(const char* warn_ms) {
    if (warn_ms != nullptr)
        ::setenv("COYOTE_STALL_WARN_MS", warn_ms, 1);
    else
        ::unsetenv("COYOTE_STALL_WARN_MS");
    auto t = std::make_unique<coyote::cThread>(0, ::getpid());
    ::unsetenv("COYOTE_STALL_WARN_MS");
    return t;
}

/// n polls of variant `v` on pair `p`, timed; false when a polled value is not the ctid's count.
bool block(const Pair& p, Variant v, int64_t n, double& seconds) {
    coyote::cThread& t = v == off ? *p.off : *p.on;
    const int32_t ctid = t.getCtid();
    const auto cls = coyote::detail::cmpl_class_of(k_oper);
    coyote::detail::Device& dev = *g.dev;
    const int64_t burst = g.sim ? k_burst : n;
    uint32_t last = 0;
    const auto t0 = Clock::now();
    for (int64_t done = 0; done < n; done += burst) {
        if (v == device)
            for (int64_t i = 0; i < burst; ++i) benchmark::DoNotOptimize(last = dev.poll_completed(ctid, cls));
        else
            for (int64_t i = 0; i < burst; ++i) benchmark::DoNotOptimize(last = t.checkCompleted(k_oper));
        if (g.sim) { // restarts the sim's idle count (and zeroes the counters, which stay 0)
            if (v == device)
                dev.clear_completed(ctid);
            else
                t.clearCompleted();
        }
    }
    seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return last == dev.completed(ctid, cls);
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

using Times = std::array<double, 3>;

/// Totals per variant over the iterations whose every block stayed within 1.5x of its variant's median.
Times undisturbed_totals(const std::vector<Times>& runs, size_t& kept) {
    Times limit{};
    for (size_t v = 0; v < 3; ++v) {
        std::vector<double> col;
        for (const Times& r : runs) col.push_back(r[v]);
        limit[v] = 1.5 * quantile(col, 0.5);
    }
    Times total{};
    kept = 0;
    for (const Times& r : runs) {
        if (r[device] > limit[device] || r[off] > limit[off] || r[on] > limit[on]) continue;
        ++kept;
        for (size_t v = 0; v < 3; ++v) total[v] += r[v];
    }
    return total;
}

void bm_doctor_cost(benchmark::State& state, int64_t n) {
    std::vector<Times> runs;
    std::vector<double> ratios;
    uint64_t it = 0;
    for (auto _ : state) {
        const Pair& p = g.pairs[it % 2];
        Times s{};
        for (size_t k = 0; k < 3; ++k) {
            const auto v = static_cast<Variant>((k + it / 2) % 3);
            if (!block(p, v, n, s[v])) {
                cb::fail(state, std::string("stall_bench: ") + k_names[v] + " polled a wrong count");
                return;
            }
        }
        ++it;
        state.SetIterationTime(s[on]);
        runs.push_back(s);
        ratios.push_back(s[off] / s[on]);
    }
    size_t kept = 0;
    const Times total = undisturbed_totals(runs, kept);
    if (kept == 0) return;
    const double polls = static_cast<double>(kept) * static_cast<double>(n);
    state.counters["kept_fraction"] = static_cast<double>(kept) / static_cast<double>(runs.size());
    for (size_t v = 0; v < 3; ++v) state.counters[std::string("ns_per_poll_") + k_names[v]] = total[v] * 1e9 / polls;
    state.counters["ratio_vs_doctor_off"] = total[off] / total[on];
    state.counters["ratio_p10"] = quantile(ratios, 0.1);
    state.counters["ratio_median"] = quantile(ratios, 0.5);
    state.counters["ratio_p90"] = quantile(ratios, 0.9);
    state.counters["ratio_vs_device_poll"] = total[device] / total[on];
    state.counters["check_period_max"] = coyote::detail::diag::k_check_period;
}

void setup() {
    g.pairs[0].off = open_polled("0");
    g.pairs[0].on = open_polled(nullptr);
    g.pairs[1].on = open_polled(nullptr);
    g.pairs[1].off = open_polled("0");
    g.dev = coyote::detail::find_open_device(0, 0);
    if (!g.dev) throw std::runtime_error("stall_bench: the cThreads' device is not open");
    g.sim = std::string(g.dev->backend_name()) == "sim";
    cb::set_context("polls", g.sim ? "sim: bursts of 64 polls, each followed by clearCompleted (all variants)"
                                   : "hw: back to back");
    for (int64_t n : k_polls)
        benchmark::RegisterBenchmark(("doctor_cost/" + std::to_string(n)).c_str(),
                                     [n](benchmark::State& s) { bm_doctor_cost(s, n); })
            ->UseManualTime();
}

void teardown() {
    g.dev.reset();
    for (Pair& p : g.pairs) {
        p.on.reset();
        p.off.reset();
    }
}

[[maybe_unused]] const bool k_registered = cb::define_suite(
    {.name = "stall", .ranks = {1, 1}, .wire = "none"}, setup, teardown);

}  // namespace
