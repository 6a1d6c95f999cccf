// coyote-mpi collectives: allreduce (recursive doubling, ring, Rabenseifner).
#include "collectives/algorithms/halving.hpp"

#include <bit>

namespace coyote::detail::coll::algo {

namespace {

/// What the recursive doubling steps share: they capture one pointer to it (no std::function allocation).
struct RdCtx {
    Reducer k;
    std::size_t es;
    std::byte* dst;
};

/// Recursive doubling with one message per round: the same exchanges as rd_schedule without a schedule.
void rd_eager(Call& c, const RdCtx* x, uint64_t bytes, int p2) {
    const int rem = c.n - p2;
    std::byte* dst = x->dst;
    auto take_acc = [](void* arg, const std::byte* in, uint32_t len) {
        const auto* y = static_cast<const RdCtx*>(arg);
        y->k.acc(y->dst, in, len / y->es);
    };
    void* cx = const_cast<RdCtx*>(x);
    std::array<EagerOp, 66> ops;
    std::size_t k = 0;
    if (c.r >= p2) {
        ops[k++] = eager_send(c.r - p2, dst, bytes);
        ops[k++] = eager_recv(c.r - p2, bytes, take_copy, dst);
    } else {
        if (c.r < rem) ops[k++] = eager_recv(c.r + p2, bytes, take_acc, cx);
        for (int mask = 1; mask < p2; mask <<= 1) {
            ops[k++] = eager_send(c.r ^ mask, dst, bytes);
            ops[k++] = eager_recv(c.r ^ mask, bytes, take_acc, cx);
        }
        if (c.r < rem) ops[k++] = eager_send(c.r + p2, dst, bytes);
    }
    c.run_eager(ops, k);
}

/// Recursive doubling as a schedule. Chunk gates instead of `after` lists order the rounds (no allocation) and
/// let a round's chunk go out as soon as the previous round reduced it.
void rd_schedule(Call& c, const RdCtx* x, uint64_t bytes, int p2) {
    const int rem = c.n - p2;
    auto produce = [x](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, x->dst + off, len); };
    auto reduce_in = [x](uint64_t off, const std::byte* in, uint32_t len) { x->k.acc(x->dst + off, in, len / x->es); };
    c.steps.reserve(2 * static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(p2))) + 2);
    if (c.r >= p2) {
        const int partner = c.r - p2;
        const int s = c.add(send_step(partner, bytes, produce));
        Step rv = recv_step(partner, bytes, [x](uint64_t off, const std::byte* in, uint32_t len) {
            std::memcpy(x->dst + off, in, len);
        });
        rv.gate = s;
        c.add(std::move(rv));
        c.run();
        return;
    }
    int last_recv = -1;
    if (c.r < rem) last_recv = c.add(recv_step(c.r + p2, bytes, reduce_in));
    for (int mask = 1; mask < p2; mask <<= 1) {
        const int partner = c.r ^ mask;
        Step s = send_step(partner, bytes, produce);
        s.gate = last_recv; // chunk i goes out once the previous round reduced it
        const int si = c.add(std::move(s));
        Step rv = recv_step(partner, bytes, reduce_in);
        rv.gate = si; // and is reduced again only after this round's send read it
        last_recv = c.add(std::move(rv));
    }
    if (c.r < rem) {
        Step s = send_step(c.r + p2, bytes, produce);
        s.gate = last_recv;
        c.add(std::move(s));
    }
    c.run();
}

}  // namespace

const char* allreduce_rd(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes) {
    if (src != dst) std::memcpy(dst, src, bytes);
    const RdCtx ctx{c.k, c.es, dst};
    if (c.e.eager_fits(bytes))
        rd_eager(c, &ctx, bytes, core_size(c.n));
    else
        rd_schedule(c, &ctx, bytes, core_size(c.n));
    return "recursive_doubling";
}

/// Ring reduce-scatter + allgather as one pipeline: every received chunk is reduced (or copied) straight into
/// the staging slot of the next message.
const char* allreduce_ring(Call& c, const std::byte* src, std::byte* dst, uint64_t count) {
    const int n = c.n;
    const int r = c.r;
    const auto [prev, next] = ring_neighbours(c);
    const std::size_t es = c.es;
    const Reducer k = c.k;
    const bool in_place = src == dst;
    auto off_of = [&](int s) { return seg_off(count, n, s) * es; };
    auto bytes_of = [&](int s) { return seg_cnt(count, n, s) * es; };

    {
        const std::byte* s0 = src + off_of(r);
        c.add(send_step(next, bytes_of(r), [s0](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, s0 + off, len); }));
    }
    for (int step = 0; step <= n - 3; ++step) {
        const int s = mod(r - step - 1, n);
        const std::byte* mine = src + off_of(s);
        std::byte* res = dst + off_of(s);
        c.add(ring_fwd(
            prev, next, bytes_of(s),
            [mine, k, es](uint64_t off, const std::byte* in, std::byte* out, uint32_t len) { k.red3(out, in, mine + off, len / es); },
            [mine, res, k, es, in_place](uint64_t off, const std::byte* in, uint32_t len) {
                if (in_place)
                    k.acc(res + off, in, len / es);
                else
                    k.red3(res + off, in, mine + off, len / es);
            },
            res));
    }
    {
        const int s = mod(r + 1, n);
        const std::byte* mine = src + off_of(s);
        std::byte* res = dst + off_of(s);
        auto reduce_in = [mine, res, k, es, in_place](uint64_t off, const std::byte* in, uint32_t len) {
            if (in_place)
                k.acc(res + off, in, len / es);
            else
                k.red3(res + off, in, mine + off, len / es);
        };
        // The finished segment goes out from where it was reduced: the allgather half is copy streams.
        Step f = fwd_step(prev, next, bytes_of(s), nullptr);
        f.absorb = reduce_in;
        f.direct_out = res;
        c.add(std::move(f));
    }
    for (int step = n - 1; step <= 2 * n - 4; ++step) {
        const int s = mod(r - (step - (n - 1)), n);
        c.add(copy_fwd(prev, next, bytes_of(s), dst + off_of(s)));
    }
    {
        const int s = mod(r - (n - 2), n);
        c.add(copy_recv(prev, bytes_of(s), dst + off_of(s)));
    }
    c.run();
    return "ring";
}

/// Rabenseifner: fold, recursive-halving reduce-scatter and recursive-doubling allgather on the core, unfold.
/// Every piece is computed by one core rank and copied everywhere else: all ranks get the same bits.
const char* allreduce_rabenseifner(Call& c, const std::byte* src, std::byte* dst, uint64_t count) {
    Halving h;
    h.lay.p2 = core_size(c.n);
    h.lay.rem = c.n - h.lay.p2;
    h.lay.count = count;
    h.lay.es = c.es;
    h.k = c.k;
    h.src = src;
    h.work = dst;
    const int p2 = h.lay.p2;
    const uint64_t bytes = count * c.es;
    c.steps.reserve(4 * static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(p2))) + 2);
    if (c.r >= p2) {
        // Folded: the whole vector to r - p2, the result back (each chunk after the send read it: in place).
        const int partner = c.r - p2;
        const int s = c.add(halving_send(partner, bytes, h.stage(0, src)));
        Step rv = halving_copy_in(partner, bytes, h.stage(0, nullptr));
        rv.gate = s;
        c.add(std::move(rv));
        c.run();
        return "rabenseifner";
    }
    int ready = -1;
    if (c.r < h.lay.rem) ready = c.add(halving_reduce(c.r + p2, bytes, h.stage(0, src != dst ? src : nullptr)));
    const int piece = halving_rounds(c, h, ready);
    const auto [last_send, last_recv] = doubling_rounds(c, h, piece);
    if (c.r < h.lay.rem) {
        Step s = halving_send(c.r + p2, bytes, h.stage(0, dst));
        s.after = {last_send, last_recv};
        c.add(std::move(s));
    }
    c.run();
    return "rabenseifner";
}
}  // namespace coyote::detail::coll::algo
