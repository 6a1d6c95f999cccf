// coyote-mpi collectives: reduce_scatter (ring, recursive halving).
#include "collectives/algorithms/halving.hpp"

#include <bit>
#include <memory>

namespace coyote::detail::coll::algo {

namespace {

/// Scratch memory of the calling thread, kept between calls up to this size.
constexpr std::size_t k_scratch_keep = 4u << 20;

std::byte* scratch(std::size_t bytes, std::unique_ptr<std::byte[]>& owned) {
    if (bytes > k_scratch_keep) {
        owned = std::make_unique_for_overwrite<std::byte[]>(bytes);
        return owned.get();
    }
    thread_local std::unique_ptr<std::byte[]> kept;
    thread_local std::size_t kept_size = 0;
    if (kept_size < bytes) {
        kept_size = std::min(k_scratch_keep, std::max({bytes, 2 * kept_size, std::size_t{4096}}));
        kept = std::make_unique_for_overwrite<std::byte[]>(kept_size);
    }
    return kept.get();
}

/// Two ranks, one message each: the peer's segment out, this rank's segment reduced with what comes in.
void reduce_scatter_pair(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int peer = mod(c.r + 1, c.n);
    const std::byte* mine = src + static_cast<uint64_t>(c.r) * bb;
    struct Ctx {
        Reducer k;
        std::size_t es;
        const std::byte* mine;
        std::byte* res;
    } x{c.k, c.es, mine, src == dst ? const_cast<std::byte*>(mine) : dst};
    auto take = [](void* arg, const std::byte* in, uint32_t len) {
        const auto* y = static_cast<const Ctx*>(arg);
        if (y->mine == y->res)
            y->k.acc(y->res, in, len / y->es);
        else
            y->k.red3(y->res, in, y->mine, len / y->es);
    };
    std::array<EagerOp, 2> ops{eager_send(peer, src + static_cast<uint64_t>(peer) * bb, bb),
                               eager_recv(peer, bb, take, &x)};
    c.run_eager(ops, ops.size());
    if (x.res != dst) std::memmove(dst, x.res, bb);
}

}  // namespace

/// Ring: segment s travels from rank s + 1 around the ring, reduced at every rank, and ends at rank s.
const char* reduce_scatter_ring(Call& c, const std::byte* src, std::byte* dst, uint64_t rc) {
    const int n = c.n;
    const auto [prev, next] = ring_neighbours(c);
    const std::size_t es = c.es;
    const Reducer k = c.k;
    const uint64_t bb = rc * es;
    auto seg = [&](int s) { return src + static_cast<uint64_t>(s) * bb; };
    if (n == 2 && c.e.eager_fits(bb)) {
        reduce_scatter_pair(c, src, dst, bb);
        return "ring";
    }
    {
        const std::byte* s0 = seg(prev);
        c.add(send_step(next, bb, [s0](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, s0 + off, len); }));
    }
    // Local room for partial segments whose forwarding is blocked (allocated on first use).
    std::vector<std::vector<std::byte>> spill(static_cast<std::size_t>(std::max(0, n - 2)));
    for (int step = 0; step <= n - 3; ++step) {
        const std::byte* mine = seg(mod(c.r - 2 - step, n));
        std::vector<std::byte>* room = &spill[static_cast<std::size_t>(step)];
        Step s = fwd_step(prev, next, bb, [mine, k, es](uint64_t off, const std::byte* in, std::byte* out, uint32_t len) {
            k.red3(out, in, mine + off, len / es);
        });
        s.absorb = [mine, k, es, room, bb](uint64_t off, const std::byte* in, uint32_t len) {
            if (room->empty()) room->resize(bb);
            k.red3(room->data() + off, in, mine + off, len / es);
        };
        s.emit = [room](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, room->data() + off, len); };
        c.add(std::move(s));
    }
    // In place, this rank's segment is reduced where it lies (no other step reads it) and moved to the front
    // afterwards: the front may still be read by the sends of other segments.
    const std::byte* mine = seg(c.r);
    std::byte* res = src == dst ? const_cast<std::byte*>(mine) : dst;
    c.add(recv_step(prev, bb, [mine, res, k, es](uint64_t off, const std::byte* in, uint32_t len) {
        if (mine == res)
            k.acc(res + off, in, len / es);
        else
            k.red3(res + off, in, mine + off, len / es);
    }));
    c.run();
    if (res != dst) std::memmove(dst, res, bb);
    return "ring";
}

/// Recursive halving (fold for non-power-of-two n): log2(p2) rounds instead of the ring's n - 1. The core
/// ranks reduce in a work buffer of rank layout: the input buffer itself in place, else thread scratch.
const char* reduce_scatter_halving(Call& c, const std::byte* src, std::byte* dst, uint64_t rc) {
    Halving h;
    h.lay.p2 = core_size(c.n);
    h.lay.rem = c.n - h.lay.p2;
    h.lay.es = c.es;
    h.lay.bb = rc * c.es;
    h.k = c.k;
    h.src = src;
    const int p2 = h.lay.p2;
    const uint64_t bb = h.lay.bb;
    c.steps.reserve(2 * static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(p2))) + 2);
    if (c.r >= p2) {
        // Folded: the whole vector (in piece order) to r - p2, this rank's block back. The stream starts with
        // block 0, so in place each chunk of the block arrives after the send read that part of the buffer.
        const int partner = c.r - p2;
        const int s = c.add(halving_send(partner, h.lay.at(p2), h.stage(0, src)));
        Step rv = recv_step(partner, bb, [dst](uint64_t off, const std::byte* in, uint32_t len) { std::memcpy(dst + off, in, len); });
        rv.gate = s;
        c.add(std::move(rv));
        c.run();
        return "recursive_halving";
    }
    std::unique_ptr<std::byte[]> owned;
    h.work = src == dst ? dst : scratch(static_cast<std::size_t>(bb) * static_cast<std::size_t>(c.n), owned);
    int ready = -1;
    if (c.r < h.lay.rem) ready = c.add(halving_reduce(c.r + p2, h.lay.at(p2), h.stage(0, h.work != src ? src : nullptr)));
    const int piece = halving_rounds(c, h, ready);
    const uint64_t mine = static_cast<uint64_t>(c.r) * bb;
    if (h.work != dst) {
        // Out of place the last round reduces this rank's block straight into dst.
        h.direct = &h.stages[h.used - 1];
        h.direct_out = dst;
        h.direct_off = mine;
        h.direct_len = bb;
    }
    if (c.r < h.lay.rem) {
        // This rank's piece is block r and then block r + p2, the folded rank's result.
        Step s = halving_send(c.r + p2, bb, h.stage(h.lay.at(c.r) + bb, h.work));
        s.gate = piece;
        s.gate_shift = bb;
        c.add(std::move(s));
    }
    c.run();
    if (h.work == dst && mine != 0) std::memmove(dst, dst + mine, bb);
    return "recursive_halving";
}
}  // namespace coyote::detail::coll::algo
