// coyote-mpi benchmark: LOCAL_TRANSFER through the sim vFPGA (passthrough user logic) next to a single-thread
// memcpy of the same sizes, measured in the same process.
//
//   BM_memcpy/<size>               baseline: memcpy src -> dst
//   BM_local_transfer/<size>       one LOCAL_TRANSFER per iteration: invoke, then poll checkCompleted
//   BM_local_transfer_latency/64   the same at 64 B, with per-transfer p50/p95/p99 latency counters
//
// Every coyote benchmark measures memcpy of its own size right before and after its timed loop and reports
// ratio_vs_memcpy = (coyote bytes/s) / (memcpy bytes/s), both measured in wall-clock time. A summary after
// the run compares the results with the targets: throughput at 1 MiB >= 0.7x memcpy, latency at 64 B <= 1 us.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <coyote/cBench.hpp>
#include <coyote/cThread.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using coyote::CoyoteOper;

constexpr int64_t k_min_size = 4 * 1024;
constexpr int64_t k_max_size = 4 * 1024 * 1024;
constexpr int64_t k_latency_size = 64;
constexpr double k_target_ratio_1mib = 0.7;
constexpr double k_target_latency_ns = 1000.0;

/// The process's cThread, opened by the first coyote benchmark.
coyote::cThread& coyote_thread() {
    static coyote::cThread thread(0, getpid());
    return thread;
}

/// Page-aligned host buffers for the memcpy baseline.
struct HostBuffers {
    explicit HostBuffers(size_t size) : src(alloc(size)), dst(alloc(size)), len(size) {
        std::memset(src.get(), 0x5a, size);
        std::memset(dst.get(), 0, size);
    }
    struct Free {
        void operator()(void* p) const noexcept { std::free(p); }
    };
    static std::unique_ptr<void, Free> alloc(size_t size) {
        void* p = std::aligned_alloc(4096, (size + 4095) / 4096 * 4096);
        if (p == nullptr)
            coyote::throw_error(coyote::Errc::resource_exhausted, "aligned_alloc", std::to_string(size) + " bytes");
        return std::unique_ptr<void, Free>(p);
    }
    std::unique_ptr<void, Free> src;
    std::unique_ptr<void, Free> dst;
    size_t len;
};

/// Buffers from getMem, freed again when the benchmark ends.
struct CoyoteBuffers {
    CoyoteBuffers(coyote::cThread& t, uint32_t size) : thread(t) {
        src = thread.getMem({coyote::CoyoteAllocType::THP, size});
        dst = thread.getMem({coyote::CoyoteAllocType::THP, size});
        std::memset(src, 0x5a, size);
        std::memset(dst, 0, size);
    }
    ~CoyoteBuffers() {
        thread.freeMem(src);
        thread.freeMem(dst);
    }
    CoyoteBuffers(const CoyoteBuffers&) = delete;
    CoyoteBuffers& operator=(const CoyoteBuffers&) = delete;
    coyote::cThread& thread;
    void* src = nullptr;
    void* dst = nullptr;
};

/// memcpy bandwidth of `size` bytes in bytes/s, measured for about 20 ms after a short warm-up.
double measure_memcpy_rate(size_t size) {
    HostBuffers buf(size);
    for (int i = 0; i < 4; ++i) std::memcpy(buf.dst.get(), buf.src.get(), size);
    uint64_t reps = 0;
    const auto start = Clock::now();
    auto now = start;
    do {
        for (int i = 0; i < 16; ++i) {
            std::memcpy(buf.dst.get(), buf.src.get(), size);
            benchmark::ClobberMemory();
        }
        reps += 16;
        now = Clock::now();
    } while (now - start < std::chrono::milliseconds(20));
    const double secs = std::chrono::duration<double>(now - start).count();
    return static_cast<double>(reps) * static_cast<double>(size) / secs;
}

/// Polls until `target` LOCAL_TRANSFER completions; skips the benchmark with an error after 10 s.
bool wait_transfers(benchmark::State& state, const coyote::cThread& thread, uint32_t target) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (unsigned spins = 0; thread.checkCompleted(CoyoteOper::LOCAL_TRANSFER) < target; ++spins) {
        if ((spins & 0xFFu) == 0xFFu && Clock::now() > deadline) {
            state.SkipWithError("LOCAL_TRANSFER did not complete within 10 s");
            return false;
        }
    }
    return true;
}

/// Results kept for the summary; the last call of a benchmark function is the measured one.
struct Summary {
    std::map<int64_t, double> ratio; ///< size -> ratio_vs_memcpy
    double latency_p50_ns = -1.0;
    double latency_p99_ns = -1.0;
    double latency_ratio = -1.0;
};
Summary g_summary;

void BM_memcpy(benchmark::State& state) {
    const auto size = static_cast<size_t>(state.range(0));
    HostBuffers buf(size);
    for (auto _ : state) {
        std::memcpy(buf.dst.get(), buf.src.get(), size);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
    state.SetItemsProcessed(state.iterations());
}

void BM_local_transfer(benchmark::State& state) {
    const auto size = static_cast<uint32_t>(state.range(0));
    try {
        coyote::cThread& thread = coyote_thread();
        CoyoteBuffers buf(thread, size);
        const coyote::localSg src = {.addr = buf.src, .len = size};
        const coyote::localSg dst = {.addr = buf.dst, .len = size};
        double memcpy_rate = measure_memcpy_rate(size);

        thread.clearCompleted();
        uint32_t issued = 0;
        const auto start = Clock::now();
        for (auto _ : state) {
            // Counters are 32-bit: restart them well before they could wrap.
            if (issued == (1u << 30)) {
                thread.clearCompleted();
                issued = 0;
            }
            thread.invoke(CoyoteOper::LOCAL_TRANSFER, src, dst);
            ++issued;
            if (!wait_transfers(state, thread, issued)) return;
        }
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        if (std::memcmp(buf.src, buf.dst, size) != 0) {
            state.SkipWithError("destination differs from source after LOCAL_TRANSFER");
            return;
        }
        // Calibrate again after the loop, so that a change of machine load affects both sides alike.
        memcpy_rate = (memcpy_rate + measure_memcpy_rate(size)) / 2.0;
        const double rate = static_cast<double>(state.iterations()) * size / secs;
        state.SetBytesProcessed(state.iterations() * state.range(0));
        state.SetItemsProcessed(state.iterations());
        state.counters["memcpy_bytes_per_second"] = benchmark::Counter(memcpy_rate);
        state.counters["ratio_vs_memcpy"] = rate / memcpy_rate;
        g_summary.ratio[state.range(0)] = rate / memcpy_rate;
    } catch (const coyote::Error& e) {
        state.SkipWithError(e.what());
    }
}

void BM_local_transfer_latency(benchmark::State& state) {
    const auto size = static_cast<uint32_t>(state.range(0));
    try {
        coyote::cThread& thread = coyote_thread();
        CoyoteBuffers buf(thread, size);
        const coyote::localSg src = {.addr = buf.src, .len = size};
        const coyote::localSg dst = {.addr = buf.dst, .len = size};
        double memcpy_rate = measure_memcpy_rate(size);

        std::vector<double> samples;
        samples.reserve(1 << 20);
        thread.clearCompleted();
        uint32_t issued = 0;
        const auto start = Clock::now();
        for (auto _ : state) {
            if (issued == (1u << 30)) {
                thread.clearCompleted();
                issued = 0;
            }
            const auto t0 = Clock::now();
            thread.invoke(CoyoteOper::LOCAL_TRANSFER, src, dst);
            ++issued;
            if (!wait_transfers(state, thread, issued)) return;
            const auto t1 = Clock::now();
            if (samples.size() < samples.capacity())
                samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        }
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        if (std::memcmp(buf.src, buf.dst, size) != 0) {
            state.SkipWithError("destination differs from source after LOCAL_TRANSFER");
            return;
        }
        memcpy_rate = (memcpy_rate + measure_memcpy_rate(size)) / 2.0;
        const double rate = static_cast<double>(state.iterations()) * size / secs;
        state.SetBytesProcessed(state.iterations() * state.range(0));
        state.SetItemsProcessed(state.iterations());
        const double p50 = coyote::detail::nearest_rank_percentile(samples, 50.0);
        const double p99 = coyote::detail::nearest_rank_percentile(samples, 99.0);
        state.counters["p50_ns"] = p50;
        state.counters["p95_ns"] = coyote::detail::nearest_rank_percentile(samples, 95.0);
        state.counters["p99_ns"] = p99;
        state.counters["ratio_vs_memcpy"] = rate / memcpy_rate;
        g_summary.latency_p50_ns = p50;
        g_summary.latency_p99_ns = p99;
        g_summary.latency_ratio = rate / memcpy_rate;
    } catch (const coyote::Error& e) {
        state.SkipWithError(e.what());
    }
}

BENCHMARK(BM_memcpy)->RangeMultiplier(4)->Range(k_min_size, k_max_size)->Arg(k_latency_size)->UseRealTime();
BENCHMARK(BM_local_transfer)->RangeMultiplier(4)->Range(k_min_size, k_max_size)->UseRealTime();
BENCHMARK(BM_local_transfer_latency)->Arg(k_latency_size)->UseRealTime();

void print_summary() {
    std::printf("\nTargets (sim backend, measured in this run):\n");
    if (auto it = g_summary.ratio.find(1024 * 1024); it != g_summary.ratio.end())
        std::printf("  LOCAL_TRANSFER 1 MiB throughput: %.2fx memcpy (target >= %.1fx)  %s\n", it->second,
                    k_target_ratio_1mib, it->second >= k_target_ratio_1mib ? "met" : "NOT met");
    else
        std::printf("  LOCAL_TRANSFER 1 MiB throughput: not measured in this run\n");
    if (g_summary.latency_p50_ns >= 0.0)
        std::printf("  LOCAL_TRANSFER 64 B latency: p50 %.3f us, p99 %.3f us (target p50 <= %.1f us)  %s\n",
                    g_summary.latency_p50_ns / 1e3, g_summary.latency_p99_ns / 1e3, k_target_latency_ns / 1e3,
                    g_summary.latency_p50_ns <= k_target_latency_ns ? "met" : "NOT met");
    else
        std::printf("  LOCAL_TRANSFER 64 B latency: not measured in this run\n");
}

}  // namespace

int main(int argc, char** argv) {
    // The throughput comparison is defined for passthrough user logic.
    ::setenv("COYOTE_SIM_MODEL", "passthrough", 0);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    print_summary();
    return 0;
}
