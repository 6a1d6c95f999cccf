// local suite: host <-> vFPGA data movement on one sim vFPGA next to memcpy of the same sizes, in one run.
// Coyote's hello-world sweep: for each size, latency (one command per iteration, posted and polled to
// completion) and throughput (a batch of k_batch commands in flight per iteration).
//
//   memcpy/<size>                 baseline: one memcpy src -> dst per iteration
//   local_transfer_{lat,bw}/<size> LOCAL_TRANSFER src -> user logic (passthrough, dest 0) -> dst
//   local_read_{lat,bw}/<size>     LOCAL_READ of src into the user logic (sink, dest 1)
//   local_write_{lat,bw}/<size>    LOCAL_WRITE of dst from the user logic (source, dest 1)
//
// The sweep of Coyote's hello-world example (01), per built-in copy-like model (selected by name on its own sim
// device): 32 back-to-back LOCAL_TRANSFERs of 1 MiB from a huge-page getMem source into a regular (aligned_alloc,
// page-fault path) destination, then completion; the vadd models get their second operand by a LOCAL_READ on dest 1
// before each transfer. The baseline (32 memcpys between the same buffers) runs between the model's iterations, so
// that both alternate under the same load and caches:
//   sweep/<model>/1048576   memcpy_p50_us, model_p50_us, ratio_vs_memcpy = memcpy median / model median;
//                           model_cpu_p50_us: the polling thread's CPU time in the model's iterations (wall time
//                           above it is time off the CPU); for the vadd models also stream_add_p50_us (the same add
//                           as a plain C++ loop over the same buffers, between the iterations too),
//                           stream_add_vs_memcpy (the bound of a kernel that reads 2 bytes per byte written) and
//                           model_vs_stream_add; model_threads: the threads that shared the model's work
//                           (COYOTE_SIM_MODEL_THREADS, automatic by default), helper_share: the share of its
//                           64 KiB pieces that helper threads ran.
//   sweep_1thread/<model>/1048576   the same with COYOTE_SIM_MODEL_THREADS=1 (the driving thread alone, as on a
//                           node whose cores all run ranks), for the models that compute.
//
// Every command's data is verified: transfers compare dst with src, reads compare the sink's word sum and
// byte count (user CSRs) with the host's, writes check the source's pattern. ratio_vs_memcpy = memcpy time /
// coyote time per command (medians). Run: local_bench [google benchmark flags] (one process; no mpiexec needed).
#include "support/bench_support.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/sim/models/lane_pool.hpp"
#include "detail/settings.hpp"

namespace {

using coyote::CoyoteOper;
namespace cb = coyote::bench;
namespace settings = ::coyote::detail::settings;

const settings::Text k_model{"COYOTE_BENCH_MODEL", "bench", "",
                             "user-logic model of local_bench (unset: the bench_model plugin built beside it)"};

constexpr int64_t k_min_size = 64;
constexpr int64_t k_max_size = 4 << 20;
constexpr int k_batch = 16;
constexpr uint32_t k_passthrough_dest = 0;
constexpr uint32_t k_sink_dest = 1;

std::unique_ptr<cb::LocalBuffers> g_rig; // the cThread and its two buffers of k_max_size bytes

uint8_t pattern_byte(uint64_t k) { return static_cast<uint8_t>((k * 131u + 7u) & 0xFFu); }

uint64_t word_sum(const uint8_t* p, std::size_t n) {
    uint64_t sum = 0;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        std::memcpy(&w, p + i, 8);
        sum += w;
    }
    for (; i < n; ++i) sum += p[i];
    return sum;
}

void fill_source(std::size_t size, uint8_t seed) {
    for (std::size_t i = 0; i < size; ++i) g_rig->src()[i] = static_cast<uint8_t>(seed + i * 7u);
    std::memset(g_rig->dst(), 0, size);
}

void bm_memcpy(benchmark::State& state, int64_t size) {
    // Same (getMem, THP) buffers as the coyote benchmarks, so that both sides see the same pages and caches.
    const auto n = static_cast<std::size_t>(size);
    fill_source(n, static_cast<uint8_t>(size + 1));
    std::vector<double> samples;
    cb::timed_loop(state, cb::Sync::none, samples, [&] {
        std::memcpy(g_rig->dst(), g_rig->src(), n);
        benchmark::ClobberMemory();
        return true;
    });
    if (state.error_occurred()) return;
    if (!cb::verify(state, std::memcmp(g_rig->dst(), g_rig->src(), n) == 0, "memcpy destination differs")) return;
    cb::record_baseline("memcpy/" + std::to_string(size), cb::median(samples));
    cb::latency_counters(state, samples);
    cb::throughput_counters(state, size, 1);
}

/// One local benchmark: `batch` commands of `op` per iteration.
void bm_local(benchmark::State& state, CoyoteOper op, int64_t size, int batch) {
    coyote::cThread& t = g_rig->thread();
    const auto n = static_cast<uint32_t>(size);
    fill_source(n, static_cast<uint8_t>(size));
    t.clearCompleted();
    t.setCSR(1, 2); // clear the sink's sum and byte count
    const coyote::localSg src = {.addr = g_rig->src(), .len = n, .dest = op == CoyoteOper::LOCAL_TRANSFER ? k_passthrough_dest : k_sink_dest};
    const coyote::localSg dst = {.addr = g_rig->dst(), .len = n, .dest = op == CoyoteOper::LOCAL_TRANSFER ? k_passthrough_dest : k_sink_dest};
    uint32_t done = 0;
    uint64_t total_ops = 0;
    std::vector<double> samples;
    cb::timed_loop(state, cb::Sync::none, samples, [&] {
        if (done >= (1u << 30)) { // completion counters are 32-bit: restart them well before they wrap
            t.clearCompleted();
            done = 0;
        }
        for (int i = 0; i < batch; ++i) {
            if (op == CoyoteOper::LOCAL_TRANSFER)
                t.invoke(op, src, dst);
            else if (op == CoyoteOper::LOCAL_READ)
                t.invoke(op, src);
            else
                t.invoke(op, dst);
        }
        done += static_cast<uint32_t>(batch);
        total_ops += static_cast<uint64_t>(batch);
        return cb::wait_completed(t, op, done);
    });
    if (state.error_occurred()) return;

    if (cb::inject_corruption()) g_rig->dst()[n - 1] ^= 0xFF; // only LOCAL_TRANSFER and LOCAL_WRITE check dst
    if (cb::inject_corruption()) t.setCSR(1, 2);         // ... and LOCAL_READ the sink's counters
    bool ok = true;
    std::string what;
    if (op == CoyoteOper::LOCAL_TRANSFER) {
        ok = std::memcmp(g_rig->dst(), g_rig->src(), n) == 0;
        what = "LOCAL_TRANSFER destination differs from the source";
    } else if (op == CoyoteOper::LOCAL_READ) {
        const uint64_t bytes = t.getCSR(1);
        const uint64_t sum = t.getCSR(0);
        ok = bytes == total_ops * n && sum == total_ops * word_sum(g_rig->src(), n);
        what = "LOCAL_READ sink saw " + std::to_string(bytes) + " bytes (expected " + std::to_string(total_ops * n) +
               ") or a wrong word sum";
    } else {
        for (uint32_t k = 0; k < n && ok; ++k) ok = g_rig->dst()[k] == pattern_byte(k);
        what = "LOCAL_WRITE destination does not hold the source pattern";
    }
    if (!cb::verify(state, ok, what)) return;

    const double per_op = cb::median(samples) / batch;
    cb::latency_counters(state, samples, batch);
    cb::throughput_counters(state, size * batch, batch);
    cb::ratio_counter(state, "ratio_vs_memcpy", "memcpy/" + std::to_string(size), per_op);
}

// ---- the hello-world sweep per built-in model ------------------------------------------------------------

constexpr uint32_t k_sweep_size = 1u << 20;
constexpr int k_sweep_transfers = 32;

/// One built-in model on its own sim device, with the sweep's buffers.
struct SweepModel {
    const char* name;
    bool two_operands; ///< vadd-like: output = dest 0 (+) dest 1
    std::unique_ptr<coyote::cThread> thread;
    uint8_t* src = nullptr; ///< huge-page getMem
    uint8_t* src_b = nullptr; ///< second operand (huge-page getMem)
    uint8_t* dst = nullptr; ///< regular memory (aligned_alloc)
};
std::vector<SweepModel> g_sweep;

/// What model `m` writes for byte i of src / src_b (32-bit words; little-endian).
bool sweep_output_ok(const SweepModel& m) {
    const auto* a = reinterpret_cast<const uint32_t*>(m.src);
    const auto* b = reinterpret_cast<const uint32_t*>(m.src_b);
    const auto* c = reinterpret_cast<const uint32_t*>(m.dst);
    const std::string name = m.name;
    for (uint32_t i = 0; i < k_sweep_size / 4; ++i) {
        uint32_t want = a[i];
        if (name == "perf_local") want = a[i] + 1;
        if (name == "vadd_int32") want = a[i] + b[i];
        if (name == "vadd") {
            float x, y;
            std::memcpy(&x, &a[i], 4);
            std::memcpy(&y, &b[i], 4);
            const float z = x + y;
            std::memcpy(&want, &z, 4);
        }
        if (c[i] != want) return false;
    }
    return true;
}

/// 32 memcpys of 1 MiB between the sweep's buffers of `m`; their time in seconds.
double sweep_memcpy(SweepModel& m) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < k_sweep_transfers; ++i) {
        std::memcpy(m.dst, m.src, k_sweep_size);
        benchmark::ClobberMemory();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The two-operand models' computation as a plain C++ loop (vectorised by the compiler, AVX2 where the CPU has it):
/// c = a + b per 32-bit lane, float32 or int32. The bound of a vadd model: it reads 2 bytes per byte written.
template <typename T>
__attribute__((target_clones("avx2", "default"), optimize("tree-vectorize"))) void stream_add(
    const T* __restrict a, const T* __restrict b, T* __restrict c, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) c[i] = static_cast<T>(a[i] + b[i]);
}

/// 32 streaming adds of 1 MiB src + src_b -> dst (the element type of model `m`); their time in seconds.
double sweep_stream_add(SweepModel& m) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < k_sweep_transfers; ++i) {
        if (std::string_view(m.name) == "vadd")
            stream_add(reinterpret_cast<const float*>(m.src), reinterpret_cast<const float*>(m.src_b),
                       reinterpret_cast<float*>(m.dst), k_sweep_size / 4);
        else
            stream_add(reinterpret_cast<const uint32_t*>(m.src), reinterpret_cast<const uint32_t*>(m.src_b),
                       reinterpret_cast<uint32_t*>(m.dst), k_sweep_size / 4);
        benchmark::ClobberMemory();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// CPU time of the calling thread in seconds.
double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Voluntary and involuntary context switches of the calling thread so far.
std::pair<long, long> thread_switches() {
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return {u.ru_nvcsw, u.ru_nivcsw};
}

/// COYOTE_SIM_MODEL_THREADS for a scope (unchanged for nullptr), restored after it.
class ThreadsOverride {
public:
    explicit ThreadsOverride(const char* value) {
        if (value == nullptr) return;
        active_ = true;
        if (const char* old = std::getenv(k_name)) old_ = old;
        ::setenv(k_name, value, 1);
    }
    ThreadsOverride(const ThreadsOverride&) = delete;
    ThreadsOverride& operator=(const ThreadsOverride&) = delete;
    ~ThreadsOverride() {
        if (!active_) return;
        if (old_)
            ::setenv(k_name, old_->c_str(), 1);
        else
            ::unsetenv(k_name);
    }

private:
    static constexpr const char* k_name = "COYOTE_SIM_MODEL_THREADS";
    bool active_ = false;
    std::optional<std::string> old_;
};

/// The sweep through model `m`, timed; the memcpy baseline runs between its iterations (untimed for the model), on
/// the same buffers, so that both alternate under the same load and caches. `threads`: COYOTE_SIM_MODEL_THREADS
/// for the run (nullptr: as set).
void bm_sweep(benchmark::State& state, SweepModel* m, const char* threads) {
    const ThreadsOverride override_threads(threads);
    const auto pool_before = coyote::detail::sim::lanes::pool_stats();
    coyote::cThread& t = *m->thread;
    const coyote::localSg a = {.addr = m->src, .len = k_sweep_size, .dest = 0};
    const coyote::localSg b = {.addr = m->src_b, .len = k_sweep_size, .dest = 1};
    const coyote::localSg c = {.addr = m->dst, .len = k_sweep_size, .dest = 0};
    (void)sweep_memcpy(*m); // warm: the destination's pages and both caches
    std::vector<double> samples, baseline, adds, model_cpu;
    baseline.reserve(1u << 16);
    adds.reserve(m->two_operands ? baseline.capacity() : 0);
    model_cpu.reserve(baseline.capacity());
    // Context switches of this thread in the model's iterations and in the baseline's (a sleep under load costs
    // the rest of a scheduler slice; memcpy never sleeps).
    long model_vol = 0, model_invol = 0, base_vol = 0, base_invol = 0;
    auto mark = thread_switches();
    double cpu_mark = thread_cpu_seconds();
    cb::timed_loop(
        state, cb::Sync::none, samples,
        [&] {
            for (int i = 0; i < k_sweep_transfers; ++i) {
                if (m->two_operands) t.invoke(CoyoteOper::LOCAL_READ, b);
                t.invoke(CoyoteOper::LOCAL_TRANSFER, a, c);
            }
            return cb::wait_completed(t, CoyoteOper::LOCAL_TRANSFER, k_sweep_transfers);
        },
        [&] {
            if (model_cpu.size() < model_cpu.capacity()) model_cpu.push_back(thread_cpu_seconds() - cpu_mark);
            t.clearCompleted();
            auto now = thread_switches();
            model_vol += now.first - mark.first;
            model_invol += now.second - mark.second;
            if (baseline.size() < baseline.capacity()) baseline.push_back(sweep_memcpy(*m));
            if (adds.size() < adds.capacity()) adds.push_back(sweep_stream_add(*m));
            mark = thread_switches();
            cpu_mark = thread_cpu_seconds();
            base_vol += mark.first - now.first;
            base_invol += mark.second - now.second;
        });
    if (state.error_occurred()) return;
    std::memset(m->dst, 0, k_sweep_size);
    // Checked: one more transfer into the cleared destination (the baseline's memcpys wrote it meanwhile).
    if (m->two_operands) t.invoke(CoyoteOper::LOCAL_READ, b);
    t.invoke(CoyoteOper::LOCAL_TRANSFER, a, c);
    const bool done = cb::wait_completed(t, CoyoteOper::LOCAL_TRANSFER, 1);
    t.clearCompleted();
    if (cb::inject_corruption()) m->dst[k_sweep_size - 1] ^= 0xFF;
    if (!cb::verify(state, done && sweep_output_ok(*m), std::string("sweep output of model ") + m->name)) return;
    cb::throughput_counters(state, int64_t{k_sweep_size} * k_sweep_transfers, k_sweep_transfers);
    const std::string key = std::string(threads == nullptr ? "sweep/" : "sweep_1thread/") + m->name;
    cb::record_baseline(key, cb::median(baseline));
    state.counters["memcpy_p50_us"] = cb::median(baseline) * 1e6;
    state.counters["model_p50_us"] = cb::median(samples) * 1e6;
    state.counters["model_cpu_p50_us"] = cb::median(model_cpu) * 1e6;
    state.counters["model_threads"] = coyote::detail::sim::lanes::model_threads();
    const auto pool = coyote::detail::sim::lanes::pool_stats();
    if (pool.pieces > pool_before.pieces) // the share of the model's pieces the helpers ran
        state.counters["helper_share"] = static_cast<double>(pool.helper_pieces - pool_before.helper_pieces) /
                                         static_cast<double>(pool.pieces - pool_before.pieces);
    if (!adds.empty()) { // the bound of a two-operand model: the same add as a plain loop, in the same run
        state.counters["stream_add_p50_us"] = cb::median(adds) * 1e6;
        state.counters["stream_add_vs_memcpy"] = cb::median(baseline) / cb::median(adds);
        state.counters["model_vs_stream_add"] = cb::median(adds) / cb::median(samples);
    }
    const auto per_iter = [&](long n) { return static_cast<double>(n) / static_cast<double>(samples.size()); };
    state.counters["model_sleeps"] = per_iter(model_vol);
    state.counters["model_preempt"] = per_iter(model_invol);
    state.counters["memcpy_sleeps"] = per_iter(base_vol);
    state.counters["memcpy_preempt"] = per_iter(base_invol);
    cb::ratio_counter(state, "ratio_vs_memcpy", key, cb::median(samples));
}

void setup_sweep() {
    const std::pair<const char*, bool> models[] = {
        {"passthrough", false}, {"perf_local", false}, {"vadd_int32", true}, {"vadd", true}};
    uint32_t device = 1;
    g_sweep.reserve(std::size(models));
    for (const auto& [name, two] : models) {
        ::setenv("COYOTE_SIM_MODEL", name, 1);
        SweepModel& m = g_sweep.emplace_back();
        m.name = name;
        m.two_operands = two;
        m.thread = std::make_unique<coyote::cThread>(0, ::getpid(), device++);
        m.src = static_cast<uint8_t*>(m.thread->getMem({coyote::CoyoteAllocType::HPF, k_sweep_size}));
        m.src_b = static_cast<uint8_t*>(m.thread->getMem({coyote::CoyoteAllocType::HPF, k_sweep_size}));
        m.dst = static_cast<uint8_t*>(std::aligned_alloc(4096, k_sweep_size));
        if (m.dst == nullptr) throw std::bad_alloc();
        for (uint32_t i = 0; i < k_sweep_size; ++i) {
            m.src[i] = static_cast<uint8_t>(i * 13u + 5u);
            m.src_b[i] = static_cast<uint8_t>(i * 29u + 1u);
        }
    }
    for (SweepModel& m : g_sweep) {
        const std::string s = std::string("/") + m.name + "/" + std::to_string(k_sweep_size);
        benchmark::RegisterBenchmark(("sweep" + s).c_str(), bm_sweep, &m, nullptr)->UseManualTime();
    }
    for (SweepModel& m : g_sweep) { // passthrough only copies: it has no word operations to share
        const std::string s = std::string("/") + m.name + "/" + std::to_string(k_sweep_size);
        if (std::string_view(m.name) != "passthrough")
            benchmark::RegisterBenchmark(("sweep_1thread" + s).c_str(), bm_sweep, &m, "1")->UseManualTime();
    }
}

/// The rig on the model COYOTE_BENCH_MODEL names (the bench plugin when unset); an unknown model is named as the
/// user set it (the sim's own message names COYOTE_SIM_MODEL, which this suite sets from it).
void make_rig() {
    ::setenv("COYOTE_SIM_MODEL", k_model.raw().value_or(COYOTE_BENCH_MODEL_PATH).c_str(), 1);
    try {
        g_rig = std::make_unique<cb::LocalBuffers>(coyote::CoyoteAllocType::THP, static_cast<uint32_t>(k_max_size));
    } catch (const coyote::Error& e) {
        if (!k_model.is_set()) throw;
        throw coyote::Error(e.code(), "COYOTE_BENCH_MODEL", "'" + *k_model.raw() + "': " + e.context());
    }
}

void setup() {
    make_rig();
    // LOCAL_READ / LOCAL_WRITE need the bench plugin's sink and source on dest 1: with another model they would
    // report verification failures that are no data errors.
    const bool sink_source = k_model.raw().value_or(COYOTE_BENCH_MODEL_PATH) == COYOTE_BENCH_MODEL_PATH;
    if (!sink_source)
        cb::set_context("local_read_write", "not run: COYOTE_BENCH_MODEL is set to another model (they need the "
                                            "bench model's sink and source on dest 1)");

    struct Op {
        const char* name;
        CoyoteOper op;
    };
    const Op ops[] = {{"local_transfer", CoyoteOper::LOCAL_TRANSFER},
                      {"local_read", CoyoteOper::LOCAL_READ},
                      {"local_write", CoyoteOper::LOCAL_WRITE}};
    for (int64_t size = k_min_size; size <= k_max_size; size *= 4) {
        const std::string s = "/" + std::to_string(size);
        benchmark::RegisterBenchmark(("memcpy" + s).c_str(), bm_memcpy, size)->UseManualTime();
        for (const Op& o : ops) {
            if (o.op != CoyoteOper::LOCAL_TRANSFER && !sink_source) continue;
            benchmark::RegisterBenchmark((std::string(o.name) + "_lat" + s).c_str(), bm_local, o.op, size, 1)
                ->UseManualTime();
            benchmark::RegisterBenchmark((std::string(o.name) + "_bw" + s).c_str(), bm_local, o.op, size, k_batch)
                ->UseManualTime();
        }
    }
    cb::set_context("batch", std::to_string(k_batch));
    setup_sweep();
}

void teardown() {
    for (SweepModel& m : g_sweep) {
        m.thread.reset(); // frees its getMem buffers
        std::free(m.dst);
    }
    g_sweep.clear();
    g_rig.reset();
}

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "local", .ranks = {1, 1}, .wire = "none (one process)"}, setup, teardown);

}  // namespace
