// hw_host suite: the host-side cost of the hw backend (ns per posted command, ns per checkCompleted) next to the
// sim backend's, in one run. The hw backend runs on the fake driver in sink mode (COYOTE_FAKE_SINK=1: every
// register store is dropped and reads back 0), so the fake's FPGA side is excluded; what remains is cThread,
// the command encoding, the register stores and the credit check, plus one call into the fake per store (the
// MMIO seam's hook, absent on hardware). The sim numbers include the sim engine, which runs small commands in
// the posting thread. Targets of issue 15: <= 150 ns per post, <= 20 ns per completion check (hw).
//
//   post/<backend>             k_batch LOCAL_TRANSFERs of 64 bytes per iteration; time of the posts only
//   check_completed/<backend>  k_checks checkCompleted(LOCAL_WRITE) per iteration
// The sim rows run first; each hw row has ratio_vs_sim = sim median / hw median (above 1: hw is cheaper). Without
// the fake driver in sink mode the suite refuses to run (a real device's queue would fill, nothing drains it).
//
// Run: LD_PRELOAD=<build>/tools/fake_driver/libcoyote-fake-driver.so COYOTE_FAKE_SINK=1 hw_bench
#include "support/bench_support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include "detail/settings.hpp"

namespace {

using coyote::CoyoteOper;
using Clock = std::chrono::steady_clock;
namespace cb = coyote::bench;

constexpr int k_batch = 16;
constexpr int k_checks = 1000;
constexpr uint32_t k_len = 64;

/// A cThread of `backend` with two small buffers.
std::unique_ptr<cb::LocalBuffers> rig_on(const char* backend) {
    ::setenv("COYOTE_BACKEND", backend, 1);
    return std::make_unique<cb::LocalBuffers>(coyote::CoyoteAllocType::REG, 4096);
}

/// The sim row records its median as the baseline of `what`; the hw row reports ratio_vs_sim against it.
void compare_with_sim(benchmark::State& state, const std::string& what, bool sim, const std::vector<double>& samples) {
    if (samples.empty()) return;
    if (sim)
        cb::record_baseline(what, cb::median(samples));
    else
        cb::ratio_counter(state, "ratio_vs_sim", what, cb::median(samples));
}

/// Refuses a run without the fake driver in sink mode, naming what is missing.
void require_fake_sink() {
    const char* how = "run it as LD_PRELOAD=<build>/tools/fake_driver/libcoyote-fake-driver.so COYOTE_FAKE_SINK=1 "
                      "hw_bench";
    if (::dlsym(RTLD_DEFAULT, "coyote_fake_mmio_stored") == nullptr)
        coyote::throw_error(coyote::Errc::invalid_argument, "hw_bench",
                            std::string("the fake driver is not loaded (this suite runs on it only): ") + how);
    const auto sink = coyote::detail::settings::value_of("COYOTE_FAKE_SINK");
    if (!sink || coyote::detail::settings::parse_flag(*sink) != std::optional<bool>(true))
        coyote::throw_error(coyote::Errc::invalid_argument, "hw_bench",
                            std::string("COYOTE_FAKE_SINK is not 1 (the commands would run and fill the queue): ") +
                                how);
}

bool drain(coyote::cThread& t, uint32_t target) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (unsigned spins = 1; t.checkCompleted(CoyoteOper::LOCAL_WRITE) < target; ++spins)
        if ((spins & 0x3FFu) == 0 && Clock::now() > deadline) return false;
    return true;
}

void bm_post(benchmark::State& state, const char* backend) {
    const auto rig = rig_on(backend);
    coyote::cThread& t = rig->thread();
    const bool sim = std::string(backend) == "sim";
    const coyote::localSg src = {.addr = rig->src(), .len = k_len};
    const coyote::localSg dst = {.addr = rig->dst(), .len = k_len};
    uint32_t done = 0;
    double total = 0;
    std::vector<double> samples;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        for (int i = 0; i < k_batch; ++i) t.invoke(CoyoteOper::LOCAL_TRANSFER, src, dst);
        const auto t1 = Clock::now();
        const double s = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(s);
        samples.push_back(s);
        total += s;
        done += k_batch;
        if (sim && !drain(t, done)) { // the sim completes them; the sink never does (and reports an empty queue)
            cb::fail(state, "sim commands did not complete");
            return;
        }
    }
    state.counters["ns_per_post"] = total * 1e9 / (static_cast<double>(state.iterations()) * k_batch);
    compare_with_sim(state, "post", sim, samples);
}

void bm_check(benchmark::State& state, const char* backend) {
    const auto rig = rig_on(backend);
    coyote::cThread& t = rig->thread();
    uint64_t sum = 0;
    double total = 0;
    std::vector<double> samples;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        for (int i = 0; i < k_checks; ++i) sum += t.checkCompleted(CoyoteOper::LOCAL_WRITE);
        const auto t1 = Clock::now();
        const double s = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(s);
        samples.push_back(s);
        total += s;
    }
    benchmark::DoNotOptimize(sum);
    state.counters["ns_per_check"] = total * 1e9 / (static_cast<double>(state.iterations()) * k_checks);
    compare_with_sim(state, "check", std::string(backend) == "sim", samples);
}

void setup() {
    require_fake_sink();
    // Each rig opens its vFPGA 0 and closes it before the next opens its own: one at a time. Sim first: the
    // baseline of the hw row that follows.
    for (const char* backend : {"sim", "hw"}) {
        benchmark::RegisterBenchmark((std::string("post/") + backend).c_str(), bm_post, backend)->UseManualTime();
        benchmark::RegisterBenchmark((std::string("check_completed/") + backend).c_str(), bm_check, backend)
            ->UseManualTime();
    }
    cb::set_context("batch", std::to_string(k_batch));
    cb::set_context("hw", "fake driver in sink mode (COYOTE_FAKE_SINK=1): FPGA side excluded");
    cb::set_context("backend", "hw (fake driver) and sim");
}

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "hw_host", .ranks = {1, 1}, .wire = "none (one process)"}, setup);

}  // namespace
