// hw_host suite: the host-side cost of the hw backend (ns per posted command, ns per checkCompleted) next to the
// sim backend's, in one run. The hw backend runs on the fake driver in sink mode (COYOTE_FAKE_SINK=1: every
// register store is dropped and reads back 0), so the fake's FPGA side is excluded; what remains is cThread,
// the command encoding, the register stores and the credit check, plus one call into the fake per store (the
// MMIO seam's hook, absent on hardware). The sim numbers include the sim engine, which runs small commands in
// the posting thread. Targets of issue 15: <= 150 ns per post, <= 20 ns per completion check (hw).
//
//   post/<backend>             k_batch LOCAL_TRANSFERs of 64 bytes per iteration; time of the posts only
//   check_completed/<backend>  k_checks checkCompleted(LOCAL_WRITE) per iteration
//
// Run: LD_PRELOAD=<build>/tools/fake_driver/libcoyote-fake-driver.so COYOTE_FAKE_SINK=1 hw_bench
#include "support/bench_support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <coyote/cThread.hpp>

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
    for (auto _ : state) {
        const auto t0 = Clock::now();
        for (int i = 0; i < k_batch; ++i) t.invoke(CoyoteOper::LOCAL_TRANSFER, src, dst);
        const auto t1 = Clock::now();
        const double s = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(s);
        total += s;
        done += k_batch;
        if (sim && !drain(t, done)) { // the sim completes them; the sink never does (and reports an empty queue)
            cb::fail(state, "sim commands did not complete");
            return;
        }
    }
    state.counters["ns_per_post"] = total * 1e9 / (static_cast<double>(state.iterations()) * k_batch);
}

void bm_check(benchmark::State& state, const char* backend) {
    const auto rig = rig_on(backend);
    coyote::cThread& t = rig->thread();
    uint64_t sum = 0;
    double total = 0;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        for (int i = 0; i < k_checks; ++i) sum += t.checkCompleted(CoyoteOper::LOCAL_WRITE);
        const auto t1 = Clock::now();
        const double s = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(s);
        total += s;
    }
    benchmark::DoNotOptimize(sum);
    state.counters["ns_per_check"] = total * 1e9 / (static_cast<double>(state.iterations()) * k_checks);
}

void setup() {
    // The hw rig opens the fake's sim vFPGA 0 and closes it before the sim rig opens its own: one at a time.
    for (const char* backend : {"hw", "sim"}) {
        benchmark::RegisterBenchmark((std::string("post/") + backend).c_str(), bm_post, backend)->UseManualTime();
        benchmark::RegisterBenchmark((std::string("check_completed/") + backend).c_str(), bm_check, backend)
            ->UseManualTime();
    }
    cb::set_context("batch", std::to_string(k_batch));
    cb::set_context("hw", "fake driver in sink mode (COYOTE_FAKE_SINK=1): FPGA side excluded");
}

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "hw_host", .ranks = {1, 1}, .wire = "none (one process)"}, setup);

}  // namespace
