// coyote-mpi collectives: recursive halving / doubling rounds on the power-of-two core (Rabenseifner allreduce,
// recursive halving reduce-scatter).
#include "collectives/algorithms/halving.hpp"

namespace coyote::detail::coll::algo {

Step halving_send(int to, uint64_t bytes, const HalvingStage* s) {
    return send_step(to, bytes, [s](uint64_t off, std::byte* out, uint32_t len) {
        s->h->runs(s->base + off, len, [&](uint64_t m, uint64_t done, uint64_t take) {
            std::memcpy(out + done, s->operand + m, take);
        });
    });
}

Step halving_reduce(int from, uint64_t bytes, const HalvingStage* s) {
    return recv_step(from, bytes, [s](uint64_t off, const std::byte* in, uint32_t len) {
        const Halving& h = *s->h;
        h.runs(s->base + off, len, [&](uint64_t m, uint64_t done, uint64_t take) {
            const std::size_t elems = take / h.lay.es;
            std::byte* d = h.work + m;
            const std::byte* b = s->operand != nullptr ? s->operand + m : nullptr;
            if (s == h.direct && m - h.direct_off < h.direct_len) { // runs never straddle a block
                if (b == nullptr) b = d;
                d = h.direct_out + (m - h.direct_off);
            }
            if (b != nullptr)
                h.k.red3(d, in + done, b, elems);
            else
                h.k.acc(d, in + done, elems);
        });
    });
}

Step halving_copy_in(int from, uint64_t bytes, const HalvingStage* s) {
    return recv_step(from, bytes, [s](uint64_t off, const std::byte* in, uint32_t len) {
        const Halving& h = *s->h;
        h.runs(s->base + off, len, [&](uint64_t m, uint64_t done, uint64_t take) { std::memcpy(h.work + m, in + done, take); });
    });
}

/// Recursive halving on the core (c.r < p2): the round of distance m = p2/2, ..., 1 sends the half of the
/// current range of pieces that r ^ m (= r +- m) keeps and reduces the half this rank keeps with what r ^ m
/// sends. `ready`: the step after which the work buffer holds this rank's whole partial vector (the fold's
/// receive), or -1 when the first round reads src. Returns the last receive: its stream is this rank's piece.
int halving_rounds(Call& c, Halving& h, int ready) {
    const PieceLayout& L = h.lay;
    int lo = 0;
    int hi = L.p2;
    int gate = ready;
    int gate_lo = 0; // first piece of the gate step's stream
    for (int m = L.p2 / 2; m >= 1; m /= 2) {
        const int partner = c.r ^ m;
        const int mid = lo + m;
        const bool upper = (c.r & m) != 0;
        const int give_lo = upper ? lo : mid;
        const int give_hi = upper ? mid : hi;
        const int keep_lo = upper ? mid : lo;
        const int keep_hi = upper ? hi : mid;
        const bool first = gate < 0;
        Step s = halving_send(partner, L.at(give_hi) - L.at(give_lo), h.stage(L.at(give_lo), first ? h.src : h.work));
        Step rv = halving_reduce(partner, L.at(keep_hi) - L.at(keep_lo),
                                 h.stage(L.at(keep_lo), first && h.src != h.work ? h.src : nullptr));
        if (!first) {
            // Both halves are sub-streams of the previous receive: each chunk waits for the bytes it covers.
            s.gate = gate;
            s.gate_shift = L.at(give_lo) - L.at(gate_lo);
            rv.gate = gate;
            rv.gate_shift = L.at(keep_lo) - L.at(gate_lo);
        }
        c.add(std::move(s));
        gate = c.add(std::move(rv));
        gate_lo = keep_lo;
        lo = keep_lo;
        hi = keep_hi;
    }
    return gate;
}

/// Recursive doubling allgather of the pieces on the core: the round of distance m = 1, 2, ..., p2/2 sends
/// this rank's range of m pieces to r ^ m and receives that rank's range. `piece`: the step that completes this
/// rank's piece. Returns the last round's send and receive: when both finished, the work buffer holds every
/// piece.
std::pair<int, int> doubling_rounds(Call& c, Halving& h, int piece) {
    const PieceLayout& L = h.lay;
    int prev_send = -1;
    int prev_recv = -1;
    for (int m = 1; m < L.p2; m *= 2) {
        const int partner = c.r ^ m;
        const int lo = c.r & ~(m - 1);
        const int plo = partner & ~(m - 1);
        Step s = halving_send(partner, L.at(lo + m) - L.at(lo), h.stage(L.at(lo), h.work));
        if (prev_send < 0) {
            s.gate = piece; // the first range is this rank's piece: the stream of the last halving receive
        } else {
            // A send started only once its range was complete: its completion certifies the range.
            s.after = {prev_send, prev_recv};
        }
        prev_send = c.add(std::move(s));
        prev_recv = c.add(halving_copy_in(partner, L.at(plo + m) - L.at(plo), h.stage(L.at(plo), nullptr)));
    }
    return {prev_send, prev_recv};
}
}  // namespace coyote::detail::coll::algo
