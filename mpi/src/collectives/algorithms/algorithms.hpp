// coyote-mpi collectives: what the algorithms share (internal to algorithms/): index arithmetic, step and eager
// operation builders, the reduction kernels of a call, the call context, and every algorithm's entry point.
// Peers are always rank +- 2^k (mod N), so a QpSet of PeerSet::log serves every algorithm; pairwise alltoall
// (every peer) is used only when all peers are connected.
#pragma once

#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

namespace coyote::detail::coll::algo {

using Kind = Step::Kind;

/// a mod n, in [0, n).
inline int mod(int a, int n) { return ((a % n) + n) % n; }

/// Balanced split of `count` elements into n segments: offset and size of segment i.
inline uint64_t seg_off(uint64_t count, int n, int i) {
    const auto nn = static_cast<uint64_t>(n);
    const auto ii = static_cast<uint64_t>(i);
    return ii * (count / nn) + std::min<uint64_t>(ii, count % nn);
}
/// Size of segment i of that split.
inline uint64_t seg_cnt(uint64_t count, int n, int i) {
    const auto nn = static_cast<uint64_t>(n);
    return count / nn + (static_cast<uint64_t>(i) < count % nn ? 1 : 0);
}

/// The largest power of two <= n (the core of the recursive doubling / halving schedules).
inline int core_size(int n) {
    int p2 = 1;
    while (p2 <= n / 2) p2 *= 2;
    return p2;
}

/// A stream of `bytes` to rank `to`, each chunk written by `produce`.
inline Step send_step(int to, uint64_t bytes, std::function<void(uint64_t, std::byte*, uint32_t)> produce) {
    return {.kind = Kind::send, .to = to, .bytes = bytes, .produce = std::move(produce)};
}
/// A stream of `bytes` from rank `from`, each chunk taken by `consume`.
inline Step recv_step(int from, uint64_t bytes, std::function<void(uint64_t, const std::byte*, uint32_t)> consume) {
    return {.kind = Kind::recv, .from = from, .bytes = bytes, .consume = std::move(consume)};
}
/// A stream from `from` passed on to `to`, each chunk transformed by `fwd` into the outgoing slot.
inline Step fwd_step(int from, int to, uint64_t bytes,
              std::function<void(uint64_t, const std::byte*, std::byte*, uint32_t)> fwd) {
    return {.kind = Kind::forward, .to = to, .from = from, .bytes = bytes, .forward = std::move(fwd)};
}

/// Copy streams moved by the engine (directly from buffer to buffer when large, see Step::direct_in).
inline Step copy_send(int to, uint64_t bytes, const std::byte* src) {
    return {.kind = Kind::send, .to = to, .bytes = bytes, .direct_out = src};
}
inline Step copy_recv(int from, uint64_t bytes, std::byte* dst) {
    return {.kind = Kind::recv, .from = from, .bytes = bytes, .direct_in = dst};
}
/// Receives into `at` and passes every chunk on from there.
inline Step copy_fwd(int from, int to, uint64_t bytes, std::byte* at) {
    return {.kind = Kind::forward, .to = to, .from = from, .bytes = bytes, .direct_in = at};
}

/// A forward step that can also take chunks into `local` (same offsets) and send them from there later.
inline Step ring_fwd(int from, int to, uint64_t bytes, std::function<void(uint64_t, const std::byte*, std::byte*, uint32_t)> fwd,
              std::function<void(uint64_t, const std::byte*, uint32_t)> absorb, std::byte* local) {
    Step s = fwd_step(from, to, bytes, std::move(fwd));
    s.absorb = std::move(absorb);
    s.emit = [local](uint64_t off, std::byte* dst, uint32_t len) { std::memcpy(dst, local + off, len); };
    return s;
}

/// Eager operations (Engine::execute_eager).
inline void take_copy(void* dst, const std::byte* payload, uint32_t len) { std::memcpy(dst, payload, len); }
inline EagerOp eager_send(int to, const std::byte* src, uint64_t bytes) {
    return EagerOp{true, false, to, static_cast<uint32_t>(bytes), src, nullptr, nullptr, nullptr, -1, -1, false};
}
inline EagerOp eager_recv(int from, uint64_t bytes, void (*take)(void*, const std::byte*, uint32_t), void* ctx) {
    return EagerOp{false, false, from, static_cast<uint32_t>(bytes), nullptr, nullptr, take, ctx, -1, -1, false};
}
/// A message the receiver copies to `dst` unchanged (EagerOp::copy: placed directly from direct_min bytes on).
inline EagerOp eager_copy_send(int to, const std::byte* src, uint64_t bytes) {
    EagerOp op = eager_send(to, src, bytes);
    op.copy = true;
    return op;
}
inline EagerOp eager_copy_recv(int from, uint64_t bytes, std::byte* dst) {
    return EagerOp{false, true, from, static_cast<uint32_t>(bytes), nullptr, dst, nullptr, nullptr, -1, -1, false};
}

/// The reduction kernels of one call: the host kernels, or the vFPGA's user logic when offloaded.
struct Reducer {
    Kernels cpu;
    ReduceOffload* offload = nullptr;
    mpi::Datatype type = mpi::Datatype::uint8;
    mpi::Op op = mpi::Op::sum;

    /// d op= s
    void acc(void* d, const void* s, std::size_t n) const {
        if (offload != nullptr)
            offload->reduce(d, d, s, n, type, op);
        else
            cpu.acc(d, s, n);
    }
    /// d = a op b
    void red3(void* d, const void* a, const void* b, std::size_t n) const {
        if (offload != nullptr)
            offload->reduce(d, a, b, n, type, op);
        else
            cpu.red3(d, a, b, n);
    }
};

/// Context of one call.
struct Call {
    Engine& e;
    const CallArgs& a;
    uint64_t epoch;
    Signature sig;
    const char* what; ///< kind_name(kind)
    int r;
    int n;
    std::size_t es;
    Reducer k;
    std::vector<Step> steps;

    /// Appends a step; returns its index (for gates and `after` lists).
    int add(Step&& s) {
        steps.push_back(std::move(s));
        return static_cast<int>(steps.size()) - 1;
    }
    /// Runs the schedule built so far.
    void run(IdleCopy idle = {}) { e.execute(steps, epoch, sig, what, idle); }
    /// Runs ops[0, used) as an eager call.
    template <std::size_t N>
    void run_eager(std::array<EagerOp, N>& ops, std::size_t used, IdleCopy idle = {}) {
        e.execute_eager(ops.data(), used, epoch, sig, what, idle);
    }
    /// Elements in `len` bytes.
    std::size_t elems(uint32_t len) const { return len / es; }
};

/// This rank's neighbours on the ring of the call: it receives from `prev` and sends to `next`.
struct RingNeighbours {
    int prev;
    int next;
};
inline RingNeighbours ring_neighbours(const Call& c) { return {mod(c.r - 1, c.n), mod(c.r + 1, c.n)}; }

/// Byte views of the caller's buffers.
inline std::byte* B(void* p) { return static_cast<std::byte*>(p); }
inline const std::byte* CB(const void* p) { return static_cast<const std::byte*>(p); }

/// Copies [off, off+len) of a run of blocks starting at virtual rank `first` between a contiguous stream and a
/// rank-ordered buffer (virtual rank u lives at block (u + root) % n).
inline void rotated_copy(std::byte* ranked, const std::byte* stream_in, std::byte* stream_out, int first, uint64_t off,
                         uint32_t len, uint64_t bb, int root, int n) {
    uint64_t done = 0;
    while (done < len) {
        const uint64_t pos = off + done;
        const auto u = first + static_cast<int>(pos / bb);
        const uint64_t within = pos % bb;
        const uint64_t take = std::min<uint64_t>(bb - within, len - done);
        std::byte* block = ranked + static_cast<uint64_t>(mod(u + root, n)) * bb + within;
        if (stream_in)
            std::memcpy(block, stream_in + done, take);
        else
            std::memcpy(stream_out + done, block, take);
        done += take;
    }
}

/// Subtree of virtual rank v in a binomial tree over n: [v, v + size).
inline int subtree(int v, int n) {
    int low = 1;
    if (v == 0) {
        while (low < n) low <<= 1;
    } else {
        low = v & -v;
    }
    return std::min(low, n - v);
}

// ---- the algorithms (one file per collective); each returns its name ---------------------------------

/// Dissemination barrier (barrier.cpp).
const char* barrier(Call& c);
/// Flat, binomial tree (`tree`) or pipelined chain broadcast of buf[0, bytes) from c.a.root (broadcast.cpp).
const char* broadcast(Call& c, std::byte* buf, uint64_t bytes, bool tree);
/// Recursive doubling allreduce (allreduce.cpp).
const char* allreduce_rd(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes);
/// Ring reduce-scatter + allgather as one pipeline (allreduce.cpp).
const char* allreduce_ring(Call& c, const std::byte* src, std::byte* dst, uint64_t count);
/// Rabenseifner: recursive halving + doubling on the power-of-two core (allreduce.cpp).
const char* allreduce_rabenseifner(Call& c, const std::byte* src, std::byte* dst, uint64_t count);
/// Binomial tree (`tree`) or chain reduce to c.a.root; dst is null off the root (reduce.cpp).
const char* reduce(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes, bool tree);
/// Binomial gather of bb-byte blocks; src null: in place at the root (gather.cpp).
const char* gather(Call& c, const std::byte* src, std::byte* dst, uint64_t bb);
/// Binomial scatter of bb-byte blocks; dst null: in place at the root (scatter.cpp).
const char* scatter(Call& c, const std::byte* src, std::byte* dst, uint64_t bb);
/// Ring allgather; the own block goes out from `own` (allgather.cpp).
const char* allgather_ring(Call& c, std::byte* dst, uint64_t bb, const std::byte* own);
/// Bruck allgather; the own block is in place in dst (allgather.cpp).
const char* allgather_bruck(Call& c, std::byte* dst, uint64_t bb);
/// Ring reduce-scatter of rc elements per rank (reduce_scatter.cpp).
const char* reduce_scatter_ring(Call& c, const std::byte* src, std::byte* dst, uint64_t rc);
/// Recursive halving reduce-scatter of rc elements per rank (reduce_scatter.cpp).
const char* reduce_scatter_halving(Call& c, const std::byte* src, std::byte* dst, uint64_t rc);
/// Pairwise alltoall of bb-byte blocks (every peer connected) (alltoall.cpp).
const char* alltoall_pairwise(Call& c, const std::byte* src, std::byte* dst, uint64_t bb);
/// Bruck alltoall of bb-byte blocks; the own block already in place (alltoall.cpp).
const char* alltoall_bruck(Call& c, const std::byte* src, std::byte* dst, uint64_t bb);

}  // namespace coyote::detail::coll::algo
