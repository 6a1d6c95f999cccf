// coyote-mpi sim backend: the NIC's per-queue-pair state, its same-host peers and its completion counters.
#pragma once

#include <time.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <coyote/error.hpp>

#include "backend/device.hpp"
#include "backend/registers.hpp"
#include "backend/sim/clock.hpp"
#include "backend/sim/models/examples/packet_tap.hpp"
#include "backend/sim/net/pull_line.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "backend/sim/shared_state.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::sim::net {

using namespace std::chrono_literals;

/// Requests of one queue pair in flight on the TCP wire before post answers busy.
inline constexpr uint32_t k_max_inflight = static_cast<uint32_t>(CMD_FIFO_DEPTH - CMD_FIFO_THR);
/// How often a same-host peer's liveness is checked (at most).
inline constexpr auto k_liveness_period = 10ms;

/// The completion counter of class `cls` of `ctid` in `s`.
inline std::atomic<uint32_t>& wback(SharedState& s, CmplClass cls, int32_t ctid) {
    return s.wback[static_cast<size_t>(cls) * N_CTID_MAX + static_cast<size_t>(ctid)];
}

static_assert(static_cast<uint32_t>(CmplClass::local_write) == 1, "local_write_counter indexes class 1");

/// Counts one completion of class `cls` of `ctid` in `s` and wakes its sleeping pollers.
inline void bump_wback(SharedState& s, CmplClass cls, int32_t ctid) {
    wback(s, cls, ctid).fetch_add(1, std::memory_order_seq_cst); // see signal_completion
    signal_completion(s);
}

/// The initiator's completions of a READ: the local write of the data, then the READ itself.
inline void complete_read(SharedState& mine, int32_t ctid) {
    wback(mine, CmplClass::local_write, ctid).fetch_add(1, std::memory_order_seq_cst);
    bump_wback(mine, CmplClass::rdma_read, ctid);
}

struct ShmPeer;

/// The TCP wire's requests of a ctid that wait for their answer, tagged with the generation of the ctid they went out
/// under (its low 32 bits, in the same atomic word as the count). An answer to a request of an earlier owner of the
/// ctid, handled while or after the ctid was unregistered, never takes a slot of the current one (a count wrapped
/// below zero would leave every post of the reused ctid facing a full FIFO).
class InflightCount {
public:
    uint32_t count() const noexcept { return static_cast<uint32_t>(word_.load(std::memory_order_relaxed)); }
    /// A request of generation `gen` goes out; not counted when the ctid moved on since (nothing will drop it).
    void add(uint64_t gen) noexcept {
        uint64_t w = word_.load(std::memory_order_relaxed);
        while (same(w, gen) && !word_.compare_exchange_weak(w, w + 1, std::memory_order_relaxed)) {
        }
    }
    /// The request of generation `gen` was answered or lost: counted off while the ctid is still at `gen`.
    void drop(uint64_t gen) noexcept {
        uint64_t w = word_.load(std::memory_order_relaxed);
        while (same(w, gen) && static_cast<uint32_t>(w) != 0 &&
               !word_.compare_exchange_weak(w, w - 1, std::memory_order_relaxed)) {
        }
    }
    /// The ctid is at generation `gen` now, with nothing in flight.
    void reset(uint64_t gen) noexcept { word_.store(gen << 32, std::memory_order_relaxed); }

private:
    static bool same(uint64_t w, uint64_t gen) noexcept { return (w >> 32) == (gen & 0xffffffffu); }
    std::atomic<uint64_t> word_{0};
};

/// One queue pair (ctid) of the NIC: decoded registers, PSNs, peer, pending error, registered memory.
struct CtidState {
    std::mutex post_mtx; ///< serializes posts of this ctid (PSN order = wire order); may be held across I/O
    mutable std::mutex mtx; ///< short critical sections only (never held across I/O)
    // Decoded registers.
    std::array<uint64_t, 3> ctx_words{};
    std::array<uint64_t, 3> conn_words{};
    bool has_ctx = false, has_conn = false;
    DecodedQpContext ctx;
    DecodedConnContext conn;
    uint32_t next_psn = 0;
    std::optional<Endpoint> peer;
    std::optional<Error> pending;
    std::atomic<bool> has_pending{false}; ///< lock-free check for the polling path
    /// Resolved shm route (peers live until the NIC is destroyed); null when the context, the peer or the ARP
    /// table changed since it was resolved. Written under mtx; read lock-free by the post fast path, which
    /// checks it again under mtx.
    std::atomic<ShmPeer*> shm_route{nullptr};
    /// The target's registered buffer the last shm post of this ctid mapped (guarded by post_mtx): reused while
    /// the validated request names the same peer, target ctid and buffer generation.
    struct MappedTarget {
        const ShmPeer* peer = nullptr;
        int32_t ctid = -1;
        uint64_t generation = 0;
        std::shared_ptr<ShmSegment> seg;
    } mapped;
    /// Where the WRITEs of the open burst (NicImpl::deferred_mask_) land: the target may hold deferred completions
    /// of this ctid's WRITEs in its ctid `deferred_ctid`. Written under post_mtx, read by any flushing poller (a
    /// mixed read claims another slot of a mapped peer, which is harmless: any claim is correct).
    std::atomic<ShmPeer*> deferred_peer{nullptr};
    std::atomic<int32_t> deferred_ctid{0};
    /// The target's queue pair and buffer slots as the last shm post of this ctid read them (guarded by post_mtx).
    SlotCache slots;
    /// WRITEs this ctid offered to its target's pollers (shm_pull.cpp; written under post_mtx): the line and peer of
    /// the last one and its sequence (0: every offer is copied and counted), the target's poll stamp when an offer
    /// of this ctid went untaken (none is offered again until the target polls again), and the queue pair's
    /// generation when the target refused one (none is offered again until the queue pair changes). The line and
    /// the sequence are also read by pollers of REMOTE_RDMA_WRITE (NicImpl::awaits_peer_copy): the line is stored
    /// before the sequence is released.
    std::atomic<PullLine*> pull_line{nullptr};
    ShmPeer* pull_peer = nullptr;
    std::atomic<uint64_t> pull_seq{0};
    uint64_t pull_backoff = 0;
    uint64_t pull_refused_gen = ~uint64_t{0}; ///< the queue pair's generation when its target refused an offer
    /// Bursts (offer_write): set by every poll of this ctid (checkCompleted, clearCompleted), cleared by each WRITE
    /// that could be offered, so a WRITE that finds it clear follows another without a poll between them (a burst);
    /// how many such WRITEs the current burst has, and how many the one before had.
    std::atomic<bool> polled{true};
    uint32_t burst_len = 0, last_burst_len = 0;
    /// As a target: the thread taking this ctid's offers (try-locked by pollers), and the initiator's registered
    /// buffer it last copied from (guarded by pull_mtx).
    std::mutex pull_mtx;
    struct PullSource {
        ShmPeer* peer = nullptr;
        uint64_t qp_gen = 0; ///< this queue pair's generation when the peer was looked up
        int32_t ctid = -1;
        uint64_t generation = 0, size = 0;
        std::shared_ptr<ShmSegment> seg;
    } pull_src;
    InflightCount inflight;
    std::atomic<uint64_t> generation{0};
    // Registered buffer (local).
    uint64_t buf_addr = 0, buf_size = 0, buf_generation = 0;
    uint32_t rkey = 0;
    std::string buf_name;
    // Remote-access windows (local copy of the published slots; size 0 = free slot).
    struct Window {
        uint64_t vaddr = 0, size = 0;
    };
    std::array<Window, k_nic_windows> wins{};
    uint32_t win_count = 0;
    uint64_t win_generation = 0; ///< last generation handed out (never reset: slots stay unique across ctid reuse)

    /// [addr, addr + len) lies whole in the registered buffer or one window (mtx held).
    bool local_target_ok(uint64_t addr, uint64_t len) const noexcept {
        if (buf_size != 0 && range_inside(addr, len, buf_addr, buf_size)) return true;
        for (const Window& w : wins)
            if (w.size != 0 && range_inside(addr, len, w.vaddr, w.size)) return true;
        return false;
    }

    /// Gives `req` the next PSN (its packets take the PSNs up to psn_after); returns the queue pair's generation it goes out under (mtx held).
    uint64_t claim_psn(RdmaRequest& req) noexcept {
        req.psn = next_psn;
        next_psn = psn_after(next_psn, req.len);
        return generation.load();
    }
};

/// A same-host peer reached over shared memory: its mapped NIC state, counters and buffers.
struct ShmPeer {
    /// `waker`, `waker_ctx`: the watch's keeping thread (sniffer::Watch), the NIC host's worker.
    ShmPeer(const Endpoint& e, sniffer::Watch::Waker waker, void* waker_ctx)
        : ep(e), watch(e.device, &tap, waker, waker_ctx) {}

    /// Where the frames of the peer's NIC go: the sniffer of its process (its sniff word), else the one published
    /// in the rendezvous of its device. `now`: coarse_now_ns().
    sniffer::Target tap_target(int64_t now) noexcept { return sniffer::tap_target(nic->sniff, ep.pid, watch, now); }

    Endpoint ep;
    ShmSegment nic_seg;
    ShmSegment state_seg;
    NicShared* nic = nullptr;
    SharedState* state = nullptr;
    PullLine* pulls = nullptr; ///< the peer's pull lines, one per ctid (null: its state segment has no room for them)
    std::mutex mtx; ///< bufs
    /// Liveness (lock-free: every post checks it): the last check in steady-clock nanoseconds, and whether the
    /// peer was found gone.
    std::atomic<int64_t> last_check_ns{0};
    std::atomic<bool> gone{false};
    Fd pidfd; ///< the peer process (readable once it exited); invalid: fall back to kill + /proc
    std::map<int32_t, std::pair<uint64_t, std::shared_ptr<ShmSegment>>> bufs;
    sniffer::TapCache tap; ///< the capture buffer the peer's frames go to
    sniffer::Watch watch;  ///< the rendezvous of the peer's device
};

/// "peer process <pid> (FPGA <ip>, device <d> vFPGA <v>)".
std::string peer_label(const Endpoint& ep);

}  // namespace coyote::detail::sim::net
