// coyote-mpi sim backend: the helper threads of the models' word operations (lane_pool.hpp).
//
// A job is published as: the old job's claim word closed, the new job's fields, done_ = 0, then the claim word
// (epoch, 0). A thread takes piece i by a compare-exchange of the claim word from (epoch, i) to (epoch, i + 1),
// i below the job's piece count, reading the job's fields before it. A helper that read another job's fields cannot
// succeed: the fields change only while the claim word is closed or belongs to another epoch. Everything here is
// sequentially consistent, so that argument holds as written.
#include "backend/sim/models/lane_pool.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

#include "backend/sim/node_cores.hpp"
#include "detail/settings.hpp"
#include "diag/per_process.hpp"

namespace coyote::detail::sim::lanes {

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Integer k_threads{
    "COYOTE_SIM_MODEL_THREADS", "sim", 0, 0, 64,
    "threads that share a built-in model's word operations (+1, int32 and float32 add) on inputs of 128 KiB and "
    "more, the thread driving the sim included (auto: the CPUs of the process's affinity mask divided among the "
    "node's ranks, 1 .. 4; 1 = the driving thread alone; 0 = auto)",
    "auto"};
constexpr int64_t k_auto_max_threads = 4;
/// How long an idle helper watches for the next job before it sleeps: while a batch of commands runs, the next
/// input follows within microseconds.
constexpr int64_t k_idle_spin_ns = 50 * 1000;
/// The claim word's index while a job's fields change.
constexpr uint32_t k_closed = UINT32_MAX;

inline int64_t monotonic_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

constexpr uint64_t ticket(uint32_t epoch, uint32_t index) noexcept { return uint64_t{epoch} << 32 | index; }

class Pool {
public:
    void run(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx, unsigned threads);
    unsigned started() const noexcept { return started_.load(); }

private:
    void start_helpers(unsigned count) noexcept;
    void helper_loop(unsigned index) noexcept;
    /// Claims and runs pieces of the job of `epoch` until none is left to claim.
    void work(uint32_t epoch) noexcept;
    /// Waits until the wake word moves from `seen`: spinning for k_idle_spin_ns, then asleep.
    void idle(uint32_t seen) noexcept;

    std::mutex job_mtx_; ///< held by the caller of the running job
    uint32_t epoch_ = 0; ///< the last job's (under job_mtx_)
    std::atomic<unsigned> started_{0};
    std::atomic<unsigned> helpers_wanted_{0}; ///< helpers with a lower index take part in jobs
    // The job.
    std::atomic<PieceFn> fn_{nullptr};
    std::atomic<const void*> ctx_{nullptr};
    std::atomic<std::size_t> n_{0}, grain_{1}, pieces_{0};
    std::atomic<uint64_t> claim_{ticket(0, k_closed)};
    std::atomic<std::size_t> done_{0};
    // Waking helpers.
    std::atomic<uint32_t> wake_{0};
    std::atomic<unsigned> sleepers_{0};
};

void Pool::run(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx, unsigned threads) {
    std::unique_lock lk(job_mtx_, std::try_to_lock);
    if (!lk.owns_lock() || threads < 2) { // another thread's job has the helpers
        fn(ctx, 0, n);
        return;
    }
    if (started_.load() < threads - 1) start_helpers(threads - 1);
    helpers_wanted_.store(threads - 1);
    const uint32_t epoch = ++epoch_;
    claim_.store(ticket(epoch - 1, k_closed));
    fn_.store(fn);
    ctx_.store(ctx);
    n_.store(n);
    grain_.store(grain);
    const std::size_t pieces = (n + grain - 1) / grain;
    pieces_.store(pieces);
    done_.store(0);
    claim_.store(ticket(epoch, 0));
    wake_.fetch_add(1);
    if (sleepers_.load() > 0) wake_.notify_all();
    work(epoch);
    // Only pieces a helper has claimed are left: wait for them, giving the core away if one takes long.
    for (unsigned spins = 0; done_.load() < pieces; ++spins) {
        if (spins < 4096)
            cpu_relax();
        else
            (void)::sched_yield();
    }
}

void Pool::work(uint32_t epoch) noexcept {
    for (;;) {
        uint64_t t = claim_.load();
        if (static_cast<uint32_t>(t >> 32) != epoch) return;
        const PieceFn fn = fn_.load();
        const void* ctx = ctx_.load();
        const std::size_t n = n_.load(), grain = grain_.load(), pieces = pieces_.load();
        const auto i = static_cast<uint32_t>(t);
        if (i >= pieces) return; // all claimed (or closed)
        if (!claim_.compare_exchange_weak(t, t + 1)) continue;
        const std::size_t from = std::size_t{i} * grain;
        fn(ctx, from, std::min(n, from + grain));
        done_.fetch_add(1);
    }
}

void Pool::idle(uint32_t seen) noexcept {
    const int64_t until = monotonic_ns() + k_idle_spin_ns;
    for (unsigned spins = 1; wake_.load() == seen; ++spins) {
        if (spins % 64 == 0 && monotonic_ns() > until) {
            sleepers_.fetch_add(1);
            wake_.wait(seen);
            sleepers_.fetch_sub(1);
        } else {
            cpu_relax();
        }
    }
}

void Pool::helper_loop(unsigned index) noexcept {
    uint32_t seen = wake_.load();
    for (;;) {
        if (index < helpers_wanted_.load()) work(static_cast<uint32_t>(claim_.load() >> 32));
        idle(seen);
        seen = wake_.load();
    }
}

void Pool::start_helpers(unsigned count) noexcept {
    // Helpers take no signals: those belong to the application's threads.
    sigset_t all, old;
    ::sigfillset(&all);
    (void)::pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = started_.load(); i < count; ++i) {
        try {
            std::thread t([this, i] { helper_loop(i); });
            (void)::pthread_setname_np(t.native_handle(), "coyote-lanes");
            t.detach(); // the pool is never destroyed (PerProcess)
            started_.store(i + 1);
        } catch (const std::system_error&) {
            break; // no more threads: the jobs run on those there are
        }
    }
    (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

unsigned model_threads() {
    if (const int64_t set = k_threads.get(); set > 0) return static_cast<unsigned>(set);
    const int64_t share = usable_cpus() / std::max<int64_t>(1, local_ranks());
    return static_cast<unsigned>(std::clamp<int64_t>(share, 1, k_auto_max_threads));
}

unsigned helpers_started() { return diag::PerProcess<Pool>::get().started(); }

void parallel_for(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx) {
    if (grain == 0 || n <= grain) {
        fn(ctx, 0, n);
        return;
    }
    diag::PerProcess<Pool>::get().run(n, grain, fn, ctx, model_threads());
}

}  // namespace coyote::detail::sim::lanes
