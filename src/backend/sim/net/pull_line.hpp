// coyote-mpi sim backend: shm WRITEs whose payload the target's poller copies (a pull) instead of the initiator.
//
// A WRITE moves its payload into memory the target's core has in its cache (the target polls, checks and reuses that
// memory), so when the initiator's core stores it, every line first comes over from the target's core. When the
// target's thread is polling LOCAL_WRITE anyway, the initiator offers it the WRITE and the target copies the payload
// from the initiator's registered buffer, which its core can keep shared and unchanged between runs, into its own
// lines: the copy a READ makes. See docs/rdma.md (Pulls) and docs/coyote_examples.md ("Who copies a WRITE's
// payload").
//
// One PullLine per target ctid lives in the net area of the target's state segment. Offers carry sequence numbers
// 1, 2, ...: a producer (an initiator) reserves the next one only once the previous offer was claimed, writes the
// offer's fields and publishes them with `ready`. A claimer (the target's poller, or the producer itself when nobody
// took the offer in time) takes an offer by moving `claimed` from seq - 1 to seq, so the fields it read before stay
// valid; it copies, then waits until `done` is seq - 1 and counts the completions, so that WRITEs complete in their
// order; then it stores `done` = seq. A target that cannot take an offer (no mapping of the source, a stale
// generation) claims it with `refused` = seq: its producer then copies the payload itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

#include <coyote/cDefs.hpp>

#include "backend/sim/shared_state.hpp"

namespace coyote::detail::sim::net {

/// What a producer offers: the payload's place in its registered buffer and where it lands in the target's.
struct PullOffer {
    uint64_t src_key = 0;        ///< the producer NIC's endpoint key (the target checks it is its queue pair's peer)
    int32_t src_ctid = 0;        ///< the producer's ctid (its registered buffer, its REMOTE_RDMA_WRITE counter)
    bool last = false;           ///< the command's last piece: completions are counted
    uint32_t len = 0;
    uint64_t src_offset = 0;     ///< in the producer's registered buffer
    uint64_t src_generation = 0; ///< of that buffer as the producer published it
    uint64_t dst_offset = 0;     ///< in the target's registered buffer
    uint64_t dst_generation = 0; ///< of that buffer, as the producer validated the request against
};

/// The offers of one target ctid (shared memory; zero bytes are the empty state). Each cache line has one writer
/// per crossing, so that neither side waits for a line the other reads at every crossing: the producer's fields,
/// the claim (which the producer watches), the target's poll stamp, and `done` (which producers read only while
/// they wait for an earlier offer to be counted).
struct PullLine {
    // Written by producers.
    alignas(64) std::atomic<uint64_t> reserved{0}; ///< the last sequence a producer reserved
    std::atomic<uint64_t> ready{0};                ///< the last sequence whose fields are written
    std::atomic<uint64_t> src_key{0};
    std::atomic<uint64_t> src_offset{0}, src_generation{0};
    std::atomic<uint64_t> dst_offset{0}, dst_generation{0};
    std::atomic<uint32_t> len{0};
    std::atomic<uint32_t> ctid_last{0}; ///< src_ctid in the low 16 bits, bit 16: last
    // Written by claimers.
    alignas(64) std::atomic<uint64_t> claimed{0}; ///< the last sequence claimed
    std::atomic<uint64_t> refused{0};             ///< the last sequence the target refused (its producer copies it)
    // Written by the target's pollers, read by producers once per offer: the time stamp (tick_stamp) of a recent
    // LOCAL_WRITE poll of the ctid.
    alignas(64) std::atomic<uint64_t> polled_tick{0};
    // Written by claimers once an offer is counted.
    alignas(64) std::atomic<uint64_t> done{0}; ///< the last sequence copied and counted
};

static_assert(sizeof(PullLine) == 256, "a pull line is four cache lines");

/// The pull lines (one per ctid) in the net area of `s`, a state segment of `seg_size` bytes mapped here; null when
/// its header places no room for them inside the segment (a peer's header is checked, not trusted).
inline PullLine* pull_lines_in(SharedState& s, uint64_t seg_size) noexcept {
    const uint64_t need = N_CTID_MAX * sizeof(PullLine);
    if (s.net_offset < sizeof(SharedState) || s.net_offset % alignof(PullLine) != 0 || s.net_size < need ||
        s.net_offset > seg_size || seg_size - s.net_offset < need)
        return nullptr;
    return reinterpret_cast<PullLine*>(reinterpret_cast<std::byte*>(&s) + s.net_offset);
}

/// Reserves the next sequence, writes `o` and publishes it. Returns the sequence, or 0 when the previous offer (of
/// this or another producer) is not claimed yet or another producer reserved first: the caller then copies itself.
inline uint64_t pull_offer(PullLine& l, const PullOffer& o) noexcept {
    uint64_t r = l.reserved.load(std::memory_order_relaxed);
    if (l.claimed.load(std::memory_order_acquire) != r || l.ready.load(std::memory_order_relaxed) != r) return 0;
    if (!l.reserved.compare_exchange_strong(r, r + 1, std::memory_order_acq_rel)) return 0;
    l.src_key.store(o.src_key, std::memory_order_relaxed);
    l.src_offset.store(o.src_offset, std::memory_order_relaxed);
    l.src_generation.store(o.src_generation, std::memory_order_relaxed);
    l.dst_offset.store(o.dst_offset, std::memory_order_relaxed);
    l.dst_generation.store(o.dst_generation, std::memory_order_relaxed);
    l.len.store(o.len, std::memory_order_relaxed);
    l.ctid_last.store((static_cast<uint32_t>(o.src_ctid) & 0xFFFFu) | (o.last ? 1u << 16 : 0u),
                      std::memory_order_relaxed);
    l.ready.store(r + 1, std::memory_order_seq_cst);
    return r + 1;
}

/// The offer after the last claimed one, if it is published: its sequence and fields. The fields are valid only if
/// the caller's pull_claim of that sequence succeeds.
inline std::optional<std::pair<uint64_t, PullOffer>> pull_peek(const PullLine& l) noexcept {
    const uint64_t c = l.claimed.load(std::memory_order_acquire);
    if (l.ready.load(std::memory_order_acquire) != c + 1) return std::nullopt;
    PullOffer o;
    o.src_key = l.src_key.load(std::memory_order_relaxed);
    o.src_offset = l.src_offset.load(std::memory_order_relaxed);
    o.src_generation = l.src_generation.load(std::memory_order_relaxed);
    o.dst_offset = l.dst_offset.load(std::memory_order_relaxed);
    o.dst_generation = l.dst_generation.load(std::memory_order_relaxed);
    o.len = l.len.load(std::memory_order_relaxed);
    const uint32_t cl = l.ctid_last.load(std::memory_order_relaxed);
    o.src_ctid = static_cast<int32_t>(cl & 0xFFFFu);
    o.last = (cl >> 16) & 1u;
    return std::pair{c + 1, o};
}

/// Whether an offer is published and not yet claimed (the polling path's check: two loads).
inline bool pull_pending(const PullLine& l) noexcept {
    return l.ready.load(std::memory_order_relaxed) != l.claimed.load(std::memory_order_relaxed);
}

/// Takes offer `seq` (seq - 1 must be the last claimed); false when someone else took it.
inline bool pull_claim(PullLine& l, uint64_t seq) noexcept {
    uint64_t expect = seq - 1;
    return l.claimed.compare_exchange_strong(expect, seq, std::memory_order_acq_rel);
}

/// Whether every offer before `seq` is copied and counted (its completions may be counted now).
inline bool pull_turn(const PullLine& l, uint64_t seq) noexcept {
    return l.done.load(std::memory_order_acquire) + 1 >= seq;
}

/// Fetches the lines a producer touches when it offers (the fields to write, the claim and the poll stamp to read),
/// so that the transfers from the target's core overlap the post's other work instead of following each other.
inline void pull_prefetch_offer(const PullLine& l) noexcept {
    __builtin_prefetch(&l.reserved, 1);
    __builtin_prefetch(&l.claimed, 0);
    __builtin_prefetch(&l.polled_tick, 0);
}

/// Offer `seq`, claimed by the caller, is copied and counted.
inline void pull_finish(PullLine& l, uint64_t seq) noexcept { l.done.store(seq, std::memory_order_release); }

}  // namespace coyote::detail::sim::net
