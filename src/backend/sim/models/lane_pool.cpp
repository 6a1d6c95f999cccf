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

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

#include "backend/sim/clock.hpp"
#include "backend/sim/node_cores.hpp"
#include "detail/settings.hpp"
#include "detail/per_process.hpp"
#include "diag/status.hpp"

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
constexpr int64_t k_idle_spin_ns = 20 * 1000;
/// Pause instructions between yields of a waiting thread (a pause takes tens of cycles on current x86 cores).
constexpr unsigned k_spins_per_yield = 64;
/// The claim word's index while a job's fields change.
constexpr uint32_t k_closed = UINT32_MAX;

constexpr uint64_t ticket(uint32_t epoch, uint32_t index) noexcept { return uint64_t{epoch} << 32 | index; }

class Pool {
public:
    void run(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx, unsigned threads);
    unsigned started() const noexcept { return started_.load(); }
    PoolStats stats() const noexcept {
        return {jobs_.load(std::memory_order_relaxed), pieces_total_.load(std::memory_order_relaxed),
                helper_pieces_.load(std::memory_order_relaxed)};
    }

private:
    void start_helpers(unsigned count) noexcept;
    void helper_loop(unsigned index) noexcept;
    /// Claims and runs pieces of the job of `epoch` until none is left to claim; returns how many it ran. A
    /// helper counts each of its pieces before marking it done, so the statistics are whole when the job returns.
    std::size_t work(uint32_t epoch, bool helper) noexcept;
    /// Waits until the wake word moves from `seen`: first spinning for k_idle_spin_ns when `spin`, then asleep.
    void idle(uint32_t seen, bool spin) noexcept;

    std::mutex job_mtx_; ///< held by the caller of the running job
    uint32_t epoch_ = 0; ///< the last job's (under job_mtx_)
    /// Jobs in a row whose helpers ran no piece (under job_mtx_): on a machine whose cores are busy a woken helper
    /// comes too late, and the wake-up is a system call per job, so from the second such job on the helpers are
    /// woken only on every 2nd, 4th, .. 64th job until they take a piece again.
    unsigned idle_streak_ = 0;
    std::atomic<unsigned> started_{0};
    std::atomic<unsigned> helpers_wanted_{0}; ///< helpers with a lower index take part in jobs
    // The job.
    std::atomic<PieceFn> fn_{nullptr};
    std::atomic<const void*> ctx_{nullptr};
    std::atomic<std::size_t> n_{0}, grain_{1}, pieces_{0};
    std::atomic<uint64_t> claim_{ticket(0, k_closed)};
    std::atomic<std::size_t> done_{0};
    // Statistics.
    std::atomic<uint64_t> jobs_{0}, pieces_total_{0}, helper_pieces_{0};
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
    jobs_.fetch_add(1, std::memory_order_relaxed);
    pieces_total_.fetch_add(pieces, std::memory_order_relaxed);
    const uint32_t woken = wake_.fetch_add(1) + 1;
    const unsigned every = 1u << std::min(idle_streak_ < 2 ? 0u : idle_streak_ - 1, 6u);
    if (sleepers_.load() > 0 && woken % every == 0) wake_.notify_all();
    const std::size_t mine = work(epoch, false);
    // Only pieces a helper has claimed are left (about 2 us of work each): wait for them, giving the core away
    // between polls in case the helper waits for it.
    for (unsigned spins = 1; done_.load() < pieces; ++spins) {
        if (spins % k_spins_per_yield != 0)
            cpu_relax();
        else
            (void)::sched_yield();
    }
    idle_streak_ = mine < pieces ? 0 : std::min(idle_streak_ + 1, 64u);
}

std::size_t Pool::work(uint32_t epoch, bool helper) noexcept {
    std::size_t ran = 0;
    for (;;) {
        uint64_t t = claim_.load();
        if (static_cast<uint32_t>(t >> 32) != epoch) return ran;
        const PieceFn fn = fn_.load();
        const void* ctx = ctx_.load();
        const std::size_t n = n_.load(), grain = grain_.load(), pieces = pieces_.load();
        const auto i = static_cast<uint32_t>(t);
        if (i >= pieces) return ran; // all claimed (or closed)
        if (!claim_.compare_exchange_weak(t, t + 1)) continue;
        const std::size_t from = std::size_t{i} * grain;
        fn(ctx, from, std::min(n, from + grain));
        if (helper) helper_pieces_.fetch_add(1, std::memory_order_relaxed);
        done_.fetch_add(1);
        ++ran;
    }
}

void Pool::idle(uint32_t seen, bool spin) noexcept {
    // Between polls the helper gives its core away: the thread that will post the next job may be waiting for it.
    const int64_t until = spin ? precise_ns() + k_idle_spin_ns : 0;
    for (unsigned spins = 1; wake_.load() == seen; ++spins) {
        if (spin && spins % k_spins_per_yield != 0) {
            cpu_relax();
        } else if (spin && precise_ns() < until) {
            (void)::sched_yield();
        } else {
            sleepers_.fetch_add(1);
            wake_.wait(seen);
            sleepers_.fetch_sub(1);
        }
    }
}

void Pool::helper_loop(unsigned index) noexcept {
    uint32_t seen = wake_.load();
    for (;;) {
        std::size_t ran = 0;
        if (index < helpers_wanted_.load()) {
            ran = work(static_cast<uint32_t>(claim_.load() >> 32), true);
        }
        idle(seen, ran > 0); // a helper that came too late for any piece sleeps at once
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

/// usable_cpus(), read again at most every 50 ms: the system call takes about a microsecond, 3 % of a 1 MiB add,
/// and a process's binding changes rarely (an MPI library binds its ranks once, early).
int64_t cpus_recently() {
    static std::atomic<int64_t> cpus{0}, read_at_ns{0};
    const int64_t now = diag::monotonic_ns(); // the coarse clock: timer ticks are plenty for 50 ms
    const int64_t cached = cpus.load(std::memory_order_relaxed);
    if (cached > 0 && now - read_at_ns.load(std::memory_order_relaxed) < 50 * 1000 * 1000) return cached;
    const int64_t fresh = usable_cpus();
    cpus.store(fresh, std::memory_order_relaxed);
    read_at_ns.store(now, std::memory_order_relaxed);
    return fresh;
}

}  // namespace

unsigned model_threads() {
    if (const int64_t set = k_threads.get(); set > 0) return static_cast<unsigned>(set);
    const int64_t share = cpus_recently() / std::max<int64_t>(1, local_ranks());
    return static_cast<unsigned>(std::clamp<int64_t>(share, 1, k_auto_max_threads));
}

unsigned helpers_started() { return PerProcess<Pool>::get().started(); }

PoolStats pool_stats() { return PerProcess<Pool>::get().stats(); }

void parallel_for(std::size_t n, std::size_t grain, PieceFn fn, const void* ctx) {
    if (grain == 0 || n <= grain) {
        fn(ctx, 0, n);
        return;
    }
    PerProcess<Pool>::get().run(n, grain, fn, ctx, model_threads());
}

}  // namespace coyote::detail::sim::lanes
