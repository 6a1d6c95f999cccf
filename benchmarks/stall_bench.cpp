// stall suite: the stall doctor's cost on the polling hot path, in one run (one process).
//
//   device_poll/<n>          the backend's poll of the completion counter alone (what checkCompleted calls),
//                            n polls per iteration: the floor
//   check_completed_off/<n>  cThread::checkCompleted of a cThread opened with COYOTE_STALL_WARN_MS=0 (doctor
//                            off: its hook is a counter decrement whose slow path never comes)
//   check_completed_on/<n>   the same on a cThread with the doctor on (default COYOTE_STALL_WARN_MS): every
//                            k_check_period polls a clock read, the counters read and published
//
// ratio_vs_doctor_off = off time / on time for the same n polls (medians): 1.0 means the doctor costs nothing
// measurable; ratio_vs_device_poll puts both next to the bare poll; ns_per_poll is the absolute cost. Each
// iteration checks that the polled value is the ctid's real completion count (a LOCAL_TRANSFER done before).
#include "support/bench_support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/device.hpp"
#include "diag/stall.hpp"

namespace {

using coyote::CoyoteOper;
namespace cb = coyote::bench;

constexpr int64_t k_polls[] = {1024, 65536};

struct Poller {
    std::unique_ptr<coyote::cThread> on, off;
    std::shared_ptr<coyote::detail::Device> dev;
};
Poller g;

/// A cThread with one completed LOCAL_TRANSFER, so that every poll reads a count of 1.
std::unique_ptr<coyote::cThread> open_polled() {
    auto t = std::make_unique<coyote::cThread>(0, ::getpid());
    auto* buf = static_cast<char*>(t->getMem({coyote::CoyoteAllocType::REG, 8192}));
    t->invoke(CoyoteOper::LOCAL_TRANSFER, coyote::localSg{.addr = buf, .len = 64},
              coyote::localSg{.addr = buf + 4096, .len = 64});
    for (int i = 0; i < 100000000 && t->checkCompleted(CoyoteOper::LOCAL_TRANSFER) < 1; ++i) {
    }
    if (t->checkCompleted(CoyoteOper::LOCAL_TRANSFER) != 1) throw std::runtime_error("stall_bench: no completion");
    return t;
}

/// n polls of `t` per iteration, recorded as baseline `key` when given, compared with the baselines.
void bm_check_completed(benchmark::State& state, coyote::cThread& t, int64_t n, const char* key) {
    std::vector<double> samples;
    uint32_t last = 0;
    if (!cb::timed_loop(state, cb::Sync::none, samples, [&] {
            for (int64_t i = 0; i < n; ++i) benchmark::DoNotOptimize(last = t.checkCompleted(CoyoteOper::LOCAL_TRANSFER));
            return last == 1;
        }))
        return;
    const double med = cb::median(samples);
    state.counters["ns_per_poll"] = med * 1e9 / static_cast<double>(n);
    if (key != nullptr) {
        cb::record_baseline(std::string(key) + "/" + std::to_string(n), med);
        return;
    }
    state.counters["check_period"] = coyote::detail::diag::k_check_period;
    cb::ratio_counter(state, "ratio_vs_doctor_off", "check_completed_off/" + std::to_string(n), med);
    cb::ratio_counter(state, "ratio_vs_device_poll", "device_poll/" + std::to_string(n), med);
}

void setup() {
    ::setenv("COYOTE_STALL_WARN_MS", "0", 1);
    g.off = open_polled();
    ::unsetenv("COYOTE_STALL_WARN_MS");
    g.on = open_polled();
    g.dev = coyote::detail::find_open_device(0, 0);
    if (!g.dev) throw std::runtime_error("stall_bench: the cThreads' device is not open");
    for (int64_t n : k_polls) {
        benchmark::RegisterBenchmark(("device_poll/" + std::to_string(n)).c_str(), [n](benchmark::State& state) {
            const int32_t ctid = g.on->getCtid();
            const auto cls = coyote::detail::cmpl_class_of(CoyoteOper::LOCAL_TRANSFER);
            std::vector<double> samples;
            uint32_t last = 0;
            if (!cb::timed_loop(state, cb::Sync::none, samples, [&] {
                    for (int64_t i = 0; i < n; ++i) benchmark::DoNotOptimize(last = g.dev->poll_completed(ctid, cls));
                    return last == 1;
                }))
                return;
            cb::record_baseline("device_poll/" + std::to_string(n), cb::median(samples));
            state.counters["ns_per_poll"] = cb::median(samples) * 1e9 / static_cast<double>(n);
        })->UseManualTime();
        benchmark::RegisterBenchmark(("check_completed_off/" + std::to_string(n)).c_str(),
                                     [n](benchmark::State& s) { bm_check_completed(s, *g.off, n, "check_completed_off"); })
            ->UseManualTime();
        benchmark::RegisterBenchmark(("check_completed_on/" + std::to_string(n)).c_str(),
                                     [n](benchmark::State& s) { bm_check_completed(s, *g.on, n, nullptr); })
            ->UseManualTime();
    }
}

void teardown() {
    g.dev.reset();
    g.on.reset();
    g.off.reset();
}

[[maybe_unused]] const bool k_registered = cb::define_suite(
    {.name = "stall", .ranks = {1, 1}, .wire = "none"}, setup, teardown);

}  // namespace
