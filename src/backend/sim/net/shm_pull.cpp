// coyote-mpi sim backend: shm WRITEs copied by the target's poller (the protocol: pull_line.hpp). The initiator
// offers a WRITE to a target thread that polls LOCAL_WRITE lately and waits until the offer is taken; the target's
// poller copies the payload from the initiator's registered buffer into its own and counts both sides' completions.
// An offer nobody takes within k_pull_idle_wait_ns (or k_pull_busy_wait_ns while the target copies earlier ones) is
// copied by its initiator, so no WRITE waits for a target that stopped polling.
#include <sched.h>

#include <chrono>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/sim/clock.hpp"
#include "backend/sim/net/nic_impl.hpp"

namespace coyote::detail::sim::net {

namespace {

/// A target whose pollers stamped its pull line within this many ticks polls lately (x86 TSC: about 5 - 8 us).
constexpr uint64_t k_pull_fresh_ticks = 16384;
/// How long an initiator waits for a polling target to take its offer, and how long while the target is copying
/// the offers before it (a 1 MiB payload takes tens of microseconds).
constexpr int64_t k_pull_idle_wait_ns = 5 * 1000;
constexpr int64_t k_pull_busy_wait_ns = 2 * 1000 * 1000;
/// Spins between two looks at the clock (and, past the first stretch, sched_yield calls) in the waits.
constexpr uint32_t k_pull_spins = 64;
constexpr int64_t k_pull_yield_after_ns = 50 * 1000;

/// How a wait for another thread's copy ended.
enum class Waited { done, gone, late };

/// Spins until `done()` holds. Past k_pull_yield_after_ns it yields the core between looks, and every
/// k_liveness_period it asks `gone()` whether the process it waits for still exists; it gives up when that process
/// is gone or `limit` passed (a peer stopped in a debugger, or one that misbehaves).
template <class Done, class Gone>
Waited wait_for(Done&& done, Gone&& gone, std::chrono::nanoseconds limit) {
    const int64_t start = precise_ns();
    int64_t checked = start;
    for (uint32_t spins = 0;; ++spins) {
        if (done()) return Waited::done;
        if (spins % k_pull_spins != k_pull_spins - 1) {
            cpu_relax();
            continue;
        }
        const int64_t now = precise_ns();
        if (now - start < k_pull_yield_after_ns) continue;
        ::sched_yield();
        if (now - checked >= std::chrono::nanoseconds(k_liveness_period).count()) {
            checked = now;
            if (gone()) return done() ? Waited::done : Waited::gone;
            if (now - start >= limit.count()) return done() ? Waited::done : Waited::late;
        }
    }
}

}  // namespace

bool NicImpl::offer_write(CtidState& cs, int32_t ctid, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                          uint64_t local_addr, bool last) {
    // A target in this process: its poller may be this very thread (a loopback queue pair), which cannot take it.
    // A target that refused an offer of this queue pair keeps refusing until the queue pair changes.
    if (peer.ep.pid == shared_->owner_pid || cs.pull_refused_gen == cs.generation.load()) return false;
    PullLine& line = peer.pulls[v.ctid];
    // WRITEs in bursts (posted without a poll of the ctid between them) are copied here: in a burst (Coyote's
    // perf_rdma posts 32 to the same place) the lines the first one brought over are in this core's cache, and a
    // handshake per WRITE costs more than the copy. Whether a WRITE starts a burst shows only later, so the first
    // one is offered only when the burst before was a single WRITE (measured for 32 KiB: offering each first WRITE
    // made the 32-WRITE round trip 6 - 12 % slower).
    const bool starts = cs.polled.load(std::memory_order_relaxed);
    if (starts) {
        cs.polled.store(false, std::memory_order_relaxed);
        cs.last_burst_len = cs.burst_len;
        cs.burst_len = 0;
    }
    ++cs.burst_len;
    if (!starts || cs.last_burst_len > 1) return false;
    const uint64_t polled = line.polled_tick.load(std::memory_order_relaxed);
    if (tick_stamp() - polled > k_pull_fresh_ticks || polled == cs.pull_backoff) return false;
    PullOffer o;
    {
        std::lock_guard lk(cs.mtx);
        if (cs.buf_size == 0 || !range_inside(local_addr, req.len, cs.buf_addr, cs.buf_size)) return false;
        o.src_offset = local_addr - cs.buf_addr;
        o.src_generation = cs.buf_generation;
    }
    o.src_key = key_;
    o.src_ctid = ctid;
    o.last = last;
    o.len = req.len;
    o.dst_offset = v.offset;
    o.dst_generation = v.buf.generation;
    if (cs.pull_seq.load(std::memory_order_relaxed) != 0 && cs.pull_line.load(std::memory_order_relaxed) != &line)
        settle_offers(cs); // offers to another target first
    const uint64_t seq = pull_offer(line, o);
    if (seq == 0) return false;
    cs.pull_line.store(&line, std::memory_order_relaxed);
    cs.pull_peer = &peer;
    cs.pull_seq.store(seq, std::memory_order_release);
    // Taken (or refused) by the target, else taken back here once the wait is over.
    const int64_t start = precise_ns();
    for (uint32_t spins = 0;; ++spins) {
        if (line.claimed.load(std::memory_order_acquire) >= seq) {
            if (line.refused.load(std::memory_order_acquire) != seq) {
                shared_->counters.pull_offers_taken.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
            cs.pull_refused_gen = cs.generation.load(); // a refusal: copy it here, and offer nothing more
            break;
        }
        if (spins % k_pull_spins != k_pull_spins - 1) {
            cpu_relax();
            continue;
        }
        const int64_t waited = precise_ns() - start;
        if (waited < k_pull_idle_wait_ns) continue;
        // The offer before this one is claimed (pull_offer) but not yet counted: its claimer, which takes the offers
        // in turn, is still copying it. (Read only past the idle wait: `done` stays on the target's core meanwhile.)
        const bool busy = !pull_turn(line, seq);
        if ((!busy || waited >= k_pull_busy_wait_ns) && pull_claim(line, seq)) {
            cs.pull_backoff = polled;
            shared_->counters.pull_taken_back.fetch_add(1, std::memory_order_relaxed);
            break;
        }
        if (busy && waited >= k_pull_yield_after_ns) (void)check_alive(peer);
    }
    // Copied here, counted after the offers before it; `done` moves on even when the copy fails.
    struct Finish {
        PullLine& l;
        uint64_t s;
        ~Finish() { pull_finish(l, s); }
    };
    {
        const Finish finish{line, seq};
        // The target is copying the offers before this one (counted first).
        const Waited w = wait_for([&] { return pull_turn(line, seq); }, [&] { return process_gone(peer.ep); },
                                  cfg_.io_timeout);
        if (w == Waited::gone) throw_error(Errc::peer_gone, "RDMA", peer_label(peer.ep) + " is gone");
        const CtidState::MappedTarget& mt = cs.mapped;
        if (mt.peer != &peer || mt.ctid != v.ctid || mt.generation != v.buf.generation || !mt.seg)
            map_target(cs, req, peer, v);
        std::memcpy(mt.seg->bytes() + v.offset, reinterpret_cast<const std::byte*>(local_addr), req.len);
        if (last) complete_shm_write(cs, ctid, peer, v.ctid);
    }
    cs.pull_seq.store(0, std::memory_order_relaxed);
    return true;
}

void NicImpl::settle_offers(CtidState& cs) {
    const uint64_t seq = cs.pull_seq.load(std::memory_order_relaxed);
    if (seq == 0) return;
    PullLine& line = *cs.pull_line.load(std::memory_order_relaxed);
    ShmPeer& peer = *cs.pull_peer;
    const Waited w = wait_for([&] { return pull_turn(line, seq + 1); }, [&] { return process_gone(peer.ep); },
                              cfg_.io_timeout);
    cs.pull_seq.store(0, std::memory_order_relaxed);
    if (w == Waited::gone)
        throw_error(Errc::peer_gone, "RDMA",
                    peer_label(peer.ep) + " is gone while it copied a WRITE of this queue pair");
    if (w == Waited::late)
        throw_error(Errc::timeout, "RDMA",
                    peer_label(peer.ep) + " took a WRITE of this queue pair to copy and has not finished it after " +
                        std::to_string(cfg_.io_timeout.count()) + " ms (COYOTE_SIM_WIRE_TIMEOUT_MS)");
}

bool NicImpl::awaits_peer_copy(int32_t ctid) const noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return false;
    const CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    const uint64_t seq = cs.pull_seq.load(std::memory_order_acquire);
    const PullLine* line = cs.pull_line.load(std::memory_order_relaxed);
    return seq != 0 && line != nullptr && !pull_turn(*line, seq + 1);
}

void NicImpl::pull(int32_t ctid) noexcept {
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    PullLine& line = pulls_[static_cast<size_t>(ctid)];
    // The claim takes the line its producer watches: fetched for writing while the offer is looked at.
    __builtin_prefetch(&line.claimed, 1);
    std::unique_lock dl(cs.pull_mtx, std::try_to_lock);
    if (!dl.owns_lock()) return; // another thread of this process takes them
    try {
        while (const auto next = pull_peek(line))
            if (!take_offer(cs, ctid, line, next->first, next->second)) break;
    } catch (...) { // a peer that cannot be mapped: its offers were refused, it copies them itself
    }
}

bool NicImpl::take_offer(CtidState& cs, int32_t ctid, PullLine& line, uint64_t seq, const PullOffer& o) {
    ShmPeer* peer = nullptr;
    const std::byte* src = pull_source(cs, o, peer);
    std::shared_lock bl(bufs_mtx_); // the registered buffer stays while it is written
    std::byte* dst = nullptr;
    if (src != nullptr) {
        std::lock_guard lk(cs.mtx);
        if (cs.buf_size != 0 && cs.buf_generation == o.dst_generation && o.len != 0 &&
            range_inside(o.dst_offset, o.len, 0, cs.buf_size))
            dst = reinterpret_cast<std::byte*>(cs.buf_addr) + o.dst_offset;
    }
    if (dst == nullptr) {
        line.refused.store(seq, std::memory_order_release);
        if (pull_claim(line, seq)) shared_->counters.pull_refused.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    if (!pull_claim(line, seq)) return true; // its producer took it back: look again
    std::memcpy(dst, src, o.len);
    bl.unlock();
    // Counted in order: a producer that took back the offer before this one may still be copying it.
    (void)wait_for([&] { return pull_turn(line, seq); }, [&] { return process_gone(peer->ep); }, cfg_.io_timeout);
    if (o.last) {
        SharedState& mine = host_.shared_state();
        (void)claim_deferred(mine, ctid); // WRITEs of the same initiator that landed before, still uncounted
        bump_wback(mine, CmplClass::local_write, ctid);
        bump_wback(*peer->state, CmplClass::rdma_write, o.src_ctid);
    }
    pull_finish(line, seq);
    shared_->counters.pulled.fetch_add(1, std::memory_order_relaxed);
    return true;
}

const std::byte* NicImpl::pull_source(CtidState& cs, const PullOffer& o, ShmPeer*& peer) noexcept {
    try {
        CtidState::PullSource& ps = cs.pull_src;
        // Only the queue pair's own peer may offer it WRITEs: looked up again when the queue pair changed.
        const uint64_t qp_gen = cs.generation.load();
        if (ps.peer == nullptr || ps.qp_gen != qp_gen || ps.peer->ep.key != o.src_key) {
            std::optional<Endpoint> ep;
            {
                std::lock_guard lk(cs.mtx);
                ep = cs.peer;
            }
            if (!ep || ep->key != o.src_key) return nullptr;
            ShmPeer* p = &shm_peer(*ep);
            ps = {p, qp_gen, -1, 0, 0, nullptr};
        }
        peer = ps.peer;
        if (o.src_ctid < 0 || o.src_ctid >= N_CTID_MAX) return nullptr;
        if (ps.ctid != o.src_ctid || ps.generation != o.src_generation || !ps.seg) {
            const BufView named = read_buf(peer->nic->buf[o.src_ctid]);
            if (!named.valid || named.generation != o.src_generation) return nullptr;
            auto seg = std::make_shared<ShmSegment>(ShmSegment::open(named.name));
            if (seg->size() < named.size) return nullptr;
            ps.ctid = o.src_ctid;
            ps.generation = named.generation;
            ps.size = named.size;
            ps.seg = std::move(seg);
        }
        if (o.len == 0 || !range_inside(o.src_offset, o.len, 0, ps.size)) return nullptr;
        return ps.seg->bytes() + o.src_offset;
    } catch (...) {
        return nullptr;
    }
}

}  // namespace coyote::detail::sim::net
