// coyote-mpi diagnostics: the stall doctor of one cThread. Its only per-poll work is one relaxed decrement of a
// PollCountdown that lives beside the data checkCompleted reads anyway; every 1 to k_check_period polls the
// out-of-line, cold slow path reads the clock and the counters, publishes them in the status segment and, after
// COYOTE_STALL_WARN_MS without progress, prints a diagnosis (then with back-off).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>

#include <coyote/cDefs.hpp>

#include "backend/device.hpp"
#include "diag/status.hpp"

namespace coyote::detail::diag {

/// Polls between two slow-path checks at most (polls that return at once), and at first.
inline constexpr uint32_t k_check_period = 4096;
inline constexpr uint32_t k_first_period = 64;
/// Checks closer than this in time double the period; further apart than k_slow_check_ns, it shrinks (polls that
/// sleep in the backend while nothing moves come slower, and the doctor must still look every few milliseconds).
inline constexpr int64_t k_fast_check_ns = 1'000'000;
inline constexpr int64_t k_slow_check_ns = 10'000'000;

/// COYOTE_STALL_WARN_MS (0: the doctor is off). Throws coyote::Error when malformed.
std::chrono::milliseconds stall_warn_after();

/// Polls left until the doctor's next check. The owner keeps it where the poll's own data already is (cThread::Impl
/// puts it next to the device pointer, in the same cache line); the Watch sets it after each check.
class PollCountdown {
public:
    /// Counts one poll; true when the check is due (then call Watch::on_poll_due).
    bool tick() noexcept {
        const uint32_t c = left_.load(std::memory_order_relaxed);
        left_.store(c - 1, std::memory_order_relaxed);
        return c == 1;
    }
    void set(uint32_t polls) noexcept { left_.store(polls, std::memory_order_relaxed); }
    /// The count itself, for a backend whose polls may sleep (Device::set_poll_countdown).
    std::atomic<uint32_t>* word() noexcept { return &left_; }

private:
    std::atomic<uint32_t> left_{k_first_period};
};

/// The cThread the doctor watches (outlives the Watch).
struct Subject {
    Device* dev = nullptr;
    uint32_t device = 0;
    int32_t vfid = 0;
    int32_t ctid = 0;
    const ibvQp* qp = nullptr;
};

class Watch {
public:
    Watch() = default;
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    /// Starts watching `s` (a slot in the status segment, the SIGUSR1 registry) with `countdown` ticked by every
    /// poll (it must outlive the Watch). With COYOTE_STALL_WARN_MS=0 the doctor is off for this cThread: no slot
    /// (coyote-info -v does not see it), no slow-path checks; the diagnosis on demand still works. Throws
    /// coyote::Error on a malformed COYOTE_STALL_WARN_MS.
    void attach(const Subject& s, PollCountdown& countdown);

    /// When countdown.tick() said so, before a poll of counter `cls`: the check (out of line, cold).
    [[gnu::cold, gnu::noinline]] void on_poll_due(CmplClass cls) noexcept { check(static_cast<uint32_t>(cls), false); }
    /// After a command of class `cls` was posted.
    void on_post(CmplClass cls) noexcept {
        if (slot_ == nullptr) return;
        auto& p = slot_->posted[static_cast<uint32_t>(cls)];
        p.store(p.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    /// While an invoke waits for a full command FIFO (every few hundred retries); `done` when it got in.
    void on_backpressure(bool done) noexcept;
    /// The queue pair was connected; `endpoint` is what the peer's backend sent after its ibvQ.
    void on_connect(std::span<const std::byte> endpoint) noexcept;

    /// The diagnosis now (printDebug, SIGUSR1).
    std::string diagnose() const;
    /// When this cThread's counters last moved (monotonic ns; 0 when not attached).
    int64_t last_progress_ns() const noexcept {
        return slot_ == nullptr ? 0 : slot_->last_progress_ns.load(std::memory_order_relaxed);
    }

private:
    void check(uint32_t cls, bool posting) noexcept;
    /// Sets the polls until the next check from the time since the last one (check_mtx_ held).
    void adapt_period(int64_t now) noexcept;
    /// Reads the completion counters into the slot; returns the progress signature.
    uint64_t refresh() noexcept;
    void publish_qp() noexcept;

    PollCountdown own_countdown_; ///< until attach
    PollCountdown* countdown_ = &own_countdown_;
    std::atomic<uint32_t> period_{k_first_period}; ///< polls between checks, adapted to how fast polls come
    std::atomic<int64_t> last_check_ns_{0}; ///< of the last full check
    Subject subject_;
    StatusSlot* slot_ = nullptr;
    StatusSlot local_slot_; ///< used when the status segment is unavailable
    std::mutex check_mtx_;  ///< one slow-path check at a time (try_lock)
    uint64_t last_sig_ = ~0ULL;
    int64_t warn_ns_ = 0;   ///< COYOTE_STALL_WARN_MS when attached; 0: off
    int64_t next_report_ns_ = 0;
    bool attached_ = false;
};

}  // namespace coyote::detail::diag
