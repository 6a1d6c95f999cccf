// coyote-mpi collectives: recursive halving / doubling on the power-of-two core (internal to algorithms/).
//
// p2 is the largest power of two <= n, rem = n - p2. Ranks r >= p2 fold into r - p2 (which reduces their whole
// vector into its own), and the p2 ranks of the core split the vector into p2 pieces, piece i ending up with
// core rank i. Every stream of these schedules is a run of whole pieces in piece order, so that the streams of
// later rounds are sub-streams of earlier ones and chunks can be gated on exactly the bytes they depend on:
// allreduce piece i is segment i of a balanced split (piece order = buffer order); reduce_scatter piece i is
// block i followed, for i < rem, by block i + p2 (the block of the folded rank travels with its partner's).
#pragma once

#include "collectives/algorithms/algorithms.hpp"

#include <array>
#include <utility>

namespace coyote::detail::coll::algo {

constexpr uint64_t k_unbounded = ~0ull;

/// Where the pieces lie in a buffer of rank layout.
struct PieceLayout {
    int p2 = 1;
    int rem = 0;
    uint64_t count = 0; ///< allreduce: elements split into p2 segments
    std::size_t es = 1;
    uint64_t bb = 0; ///< reduce_scatter: bytes of one rank's block (0: allreduce layout)

    /// Stream offset of piece i; at(p2) is the whole stream.
    uint64_t at(int i) const {
        if (bb == 0) return seg_off(count, p2, i) * es;
        return bb * static_cast<uint64_t>(i + std::min(i, rem));
    }
    /// Buffer offset of stream byte x; `run` receives the bytes contiguous in the buffer from there.
    uint64_t mem(uint64_t x, uint64_t& run) const {
        const uint64_t pairs = 2 * bb * static_cast<uint64_t>(rem); // pieces made of two blocks
        if (x >= pairs) {
            run = k_unbounded;
            return x - pairs / 2;
        }
        const uint64_t piece = x / (2 * bb);
        const uint64_t within = x % (2 * bb);
        run = bb - within % bb;
        return (within < bb ? piece : piece + static_cast<uint64_t>(p2)) * bb + within % bb;
    }
};

struct Halving;

/// One step's view of a halving schedule: the stream offset of its first byte and its operand (send: the
/// source buffer; reduce: the second operand, null to accumulate into the work buffer). Steps capture only a
/// pointer to their stage, which keeps their std::function targets in the small-object buffer (no allocation).
struct HalvingStage {
    const Halving* h;
    uint64_t base;
    const std::byte* operand;
};

/// State of one halving schedule; lives on the stack of the algorithm until its schedule ran.
struct Halving {
    PieceLayout lay;
    Reducer k;
    const std::byte* src = nullptr; ///< this rank's input (rank layout)
    std::byte* work = nullptr;      ///< partial and final results (rank layout; == src in place)
    /// Optional: the reductions of stage `direct` that land in [direct_off, direct_off + direct_len) of the work
    /// buffer go to direct_out instead (the result block, saving a copy out of the work buffer).
    const HalvingStage* direct = nullptr;
    std::byte* direct_out = nullptr;
    uint64_t direct_off = 0;
    uint64_t direct_len = 0;
    std::array<HalvingStage, 4 * 31 + 4> stages; ///< filled by stage() (left uninitialised: no per-call clearing)
    std::size_t used = 0;

    const HalvingStage* stage(uint64_t base, const std::byte* operand) {
        stages.at(used) = HalvingStage{this, base, operand};
        return &stages[used++];
    }
    /// Calls f(buffer offset, offset in the chunk, bytes) for the contiguous runs of stream bytes [x, x + len).
    template <typename F>
    void runs(uint64_t x, uint32_t len, F&& f) const {
        uint64_t done = 0;
        while (done < len) {
            uint64_t run = 0;
            const uint64_t m = lay.mem(x + done, run);
            const uint64_t take = std::min<uint64_t>(run, len - done);
            f(m, done, take);
            done += take;
        }
    }
};

/// A send of stream bytes [s->base, s->base + bytes) from s->operand.
Step halving_send(int to, uint64_t bytes, const HalvingStage* s);
/// A receive reducing stream bytes [s->base, ...) into the work buffer (with s->operand, or accumulating).
Step halving_reduce(int from, uint64_t bytes, const HalvingStage* s);
/// A receive copying stream bytes [s->base, ...) into the work buffer.
Step halving_copy_in(int from, uint64_t bytes, const HalvingStage* s);
/// The halving rounds of core rank c.r; returns the last receive (its stream is this rank's piece).
int halving_rounds(Call& c, Halving& h, int ready);
/// The doubling rounds of core rank c.r; returns the last round's send and receive.
std::pair<int, int> doubling_rounds(Call& c, Halving& h, int piece);

}  // namespace coyote::detail::coll::algo
