// coyote-mpi sim backend: state of one sim vFPGA that other processes may touch (the emulated NIC of a
// peer increments our completion counters). Lives in a POSIX shm segment created by the owning process:
//   /coyote-sim.<uid>.<pid>.d<device>v<vfid>.state
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

#include <coyote/cDefs.hpp>

namespace coyote::detail::sim {

inline constexpr uint64_t k_state_magic = 0x434f594f54455354ULL; // "COYOTEST"
inline constexpr uint32_t k_state_version = 7;
/// Bytes reserved for the net engine's area after the (page-rounded) header; see net_offset / net_size. It holds
/// the NIC's pull lines (net/pull_line.hpp), one per ctid.
inline constexpr uint64_t k_state_net_area_size = 1ULL << 20;

/// Header of the shared state segment; the net engine may append its own area after it
/// (use `net_offset` / `net_size`, never sizeof(SharedState), to find it).
struct SharedState {
    uint64_t magic = 0;
    uint32_t version = 0;
    int32_t owner_pid = 0;
    uint64_t owner_start_time = 0; ///< /proc/<pid>/stat field 22, to detect pid reuse
    uint32_t device = 0;
    int32_t vfid = 0;
    uint32_t ip_addr = 0;
    uint32_t pad0 = 0;
    uint64_t mac_addr = 0;
    /// Writeback counters, Coyote's layout: wback[cls * N_CTID_MAX + ctid].
    alignas(64) std::atomic<uint32_t> wback[N_WBACKS * N_CTID_MAX];
    /// Where the net engine's area starts in the segment and how large it is (0 if none).
    uint64_t net_offset = 0;
    uint64_t net_size = 0;
    /// The futex word of sleeping pollers: a completion sequence in the upper 31 bits, advanced by a completion only
    /// while a poller sleeps or is about to (cmpl_waiters > 0), and in bit 0 the mark of a poller gone to sleep on
    /// the current value. A poller that spins reads its counter, never this line, so a peer that posts completions
    /// does not take the line back from the poller at every completion.
    alignas(64) std::atomic<uint32_t> cmpl_seq{0};
    std::atomic<uint32_t> cmpl_waiters{0};
    /// LOCAL_WRITE completions of each ctid that a same-host initiator applied but left uncounted (deferred: see
    /// defer_local_write). A line per ctid, written by the initiators and read by this vFPGA's pollers only now and
    /// then, so that a burst of WRITEs does not take the polled counter's line from the poller at every WRITE.
    struct alignas(64) Deferred {
        std::atomic<uint32_t> n{0};
    };
    Deferred deferred[N_CTID_MAX];
};

/// Bit 0 of cmpl_seq: a poller sleeps (or is about to) on the word's current value.
inline constexpr uint32_t k_cmpl_sleeping = 1;

/// Wakes the threads (of any process) sleeping in wait_completion on `s`; call after each completion counter
/// increment, which must be a seq_cst read-modify-write (the same instruction as any other on x86). Inline: every
/// completion runs it. With nobody asleep it costs one load of a line that stays shared between the completing and
/// the polling cores; else it advances the sequence, and the first completion after a poller went to sleep makes
/// the futex call (a burst of completions makes one, not one per completion while the sleeper waits to run).
inline void signal_completion(SharedState& s) noexcept {
    // The caller's increment and the sleeper's registration are seq_cst read-modify-writes, and each side reads the
    // other's variable after its own with a seq_cst load: in their single total order one side sees the other, so
    // either the sleeper's re-check sees the increment or this sees the sleeper. A load, unlike a read-modify-write,
    // does not take the line: a completer and the target's own completions no longer pass it to and fro (32 WRITEs
    // of 64 B and back: 6.6 - 7.1 -> 6.4 - 6.5 us; docs/coyote_examples.md, example 09).
    if (s.cmpl_waiters.load(std::memory_order_seq_cst) == 0) return;
    // Advance the sequence and take the sleeping mark in one step: a mark set on the value this completion replaces
    // is always seen, and a mark set later (on the new value) is left for the completion after.
    uint32_t old = s.cmpl_seq.load(std::memory_order_relaxed);
    while (!s.cmpl_seq.compare_exchange_weak(old, (old & ~k_cmpl_sleeping) + 2, std::memory_order_seq_cst)) {
    }
    if (old & k_cmpl_sleeping)
        (void)::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.cmpl_seq), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

/// Sleeps until `changed()` holds (what the caller waits for: a counter past the value it last saw, a free slot),
/// a completion is signalled on `s`, or `timeout_ns` pass. `changed` is evaluated once, after this thread is
/// registered as a sleeper, so that a completion racing with the decision to sleep is never slept through.
template <class Changed>
inline void wait_completion(SharedState& s, Changed&& changed, long timeout_ns) noexcept {
    s.cmpl_waiters.fetch_add(1, std::memory_order_seq_cst);
    // Read before the re-check: a completion signalled after it moves the sequence, so the mark below is not set
    // (the compare-exchange fails) or the futex wait finds another value, or the completion sees the mark and wakes.
    uint32_t seen = s.cmpl_seq.load(std::memory_order_seq_cst);
    if (!changed()) {
        const uint32_t marked = seen | k_cmpl_sleeping;
        if (seen == marked || s.cmpl_seq.compare_exchange_strong(seen, marked, std::memory_order_seq_cst)) {
            const timespec ts{0, timeout_ns};
            (void)::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.cmpl_seq), FUTEX_WAIT, marked, &ts, nullptr, 0);
        }
    }
    s.cmpl_waiters.fetch_sub(1, std::memory_order_seq_cst);
}

/// The LOCAL_WRITE counter of `ctid` in `s` (Coyote's writeback layout: class 1, after the local reads).
inline std::atomic<uint32_t>& local_write_counter(SharedState& s, int32_t ctid) noexcept {
    return s.wback[1 * N_CTID_MAX + static_cast<size_t>(ctid)];
}

/// Counts the deferred LOCAL_WRITE completions of `ctid` in `s`; returns whether there were any. Any thread of any
/// process may call it at any time: the deferred count moves whole to the counter, which only goes up.
inline bool claim_deferred(SharedState& s, int32_t ctid) noexcept {
    std::atomic<uint32_t>& d = s.deferred[ctid].n;
    if (d.load(std::memory_order_relaxed) == 0) return false; // a read: the line stays shared with the initiator
    const uint32_t n = d.exchange(0, std::memory_order_acq_rel);
    if (n == 0) return false;
    local_write_counter(s, ctid).fetch_add(n, std::memory_order_seq_cst);
    signal_completion(s);
    return true;
}

/// One LOCAL_WRITE completion of `ctid` in `s` whose data the caller has written, counted later: by the next
/// claim_deferred of the initiator (its next poll) or of a poller of `s` (claim cadence: SimDevice). A poller
/// asleep on `s` cannot claim, so with sleepers it is counted at once; the poller's registration and this check are
/// ordered (seq_cst both sides): either the poller's re-check sees the deferred count or this sees the sleeper.
inline void defer_local_write(SharedState& s, int32_t ctid) noexcept {
    s.deferred[ctid].n.fetch_add(1, std::memory_order_seq_cst);
    // A seq_cst load, as in signal_completion: it leaves the target's line shared instead of taking it at every
    // WRITE (32 WRITEs of 64 B and back: 7.2 -> 6.8 us).
    if (s.cmpl_waiters.load(std::memory_order_seq_cst) != 0) (void)claim_deferred(s, ctid);
}

static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared counters need lock-free atomics");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "the completion sequence is a futex word");

}  // namespace coyote::detail::sim
