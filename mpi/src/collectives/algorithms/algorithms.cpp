// coyote-mpi collectives: the algorithms, each a schedule of send / receive / forward streams run by the engine.
// Peers are always rank +- 2^k (mod N), so a QpSet of PeerSet::log serves every algorithm; pairwise alltoall
// (every peer) is used only when all peers are connected.
#include "collectives/engine/engine.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coyote::detail::coll {

namespace {

using Kind = Step::Kind;

/// Broadcasts of one message on up to this many ranks go out from the root to everyone (flat): messages up to
/// k_flat_bcast_small bytes always, larger ones (up to a chunk) when a node is oversubscribed.
constexpr int k_flat_bcast_ranks = 4;
constexpr uint64_t k_flat_bcast_small = 4096;

int mod(int a, int n) { return ((a % n) + n) % n; }

/// Balanced split of `count` elements into n segments: offset and size of segment i.
uint64_t seg_off(uint64_t count, int n, int i) {
    const auto nn = static_cast<uint64_t>(n);
    const auto ii = static_cast<uint64_t>(i);
    return ii * (count / nn) + std::min<uint64_t>(ii, count % nn);
}
uint64_t seg_cnt(uint64_t count, int n, int i) {
    const auto nn = static_cast<uint64_t>(n);
    return count / nn + (static_cast<uint64_t>(i) < count % nn ? 1 : 0);
}

/// The largest power of two <= n (the core of the recursive doubling / halving schedules).
int core_size(int n) {
    int p2 = 1;
    while (p2 <= n / 2) p2 *= 2;
    return p2;
}

Step send_step(int to, uint64_t bytes, std::function<void(uint64_t, std::byte*, uint32_t)> produce) {
    Step s;
    s.kind = Kind::send;
    s.to = to;
    s.bytes = bytes;
    s.produce = std::move(produce);
    return s;
}
Step recv_step(int from, uint64_t bytes, std::function<void(uint64_t, const std::byte*, uint32_t)> consume) {
    Step s;
    s.kind = Kind::recv;
    s.from = from;
    s.bytes = bytes;
    s.consume = std::move(consume);
    return s;
}
Step fwd_step(int from, int to, uint64_t bytes,
              std::function<void(uint64_t, const std::byte*, std::byte*, uint32_t)> fwd) {
    Step s;
    s.kind = Kind::forward;
    s.from = from;
    s.to = to;
    s.bytes = bytes;
    s.forward = std::move(fwd);
    return s;
}

/// Copy streams moved by the engine (directly from buffer to buffer when large, see Step::direct_in).
Step copy_send(int to, uint64_t bytes, const std::byte* src) {
    Step s;
    s.kind = Kind::send;
    s.to = to;
    s.bytes = bytes;
    s.direct_out = src;
    return s;
}
Step copy_recv(int from, uint64_t bytes, std::byte* dst) {
    Step s;
    s.kind = Kind::recv;
    s.from = from;
    s.bytes = bytes;
    s.direct_in = dst;
    return s;
}
/// Receives into `at` and passes every chunk on from there.
Step copy_fwd(int from, int to, uint64_t bytes, std::byte* at) {
    Step s;
    s.kind = Kind::forward;
    s.from = from;
    s.to = to;
    s.bytes = bytes;
    s.direct_in = at;
    return s;
}

/// A forward step that can also take chunks into `local` (same offsets) and send them from there later.
Step ring_fwd(int from, int to, uint64_t bytes, std::function<void(uint64_t, const std::byte*, std::byte*, uint32_t)> fwd,
              std::function<void(uint64_t, const std::byte*, uint32_t)> absorb, std::byte* local) {
    Step s = fwd_step(from, to, bytes, std::move(fwd));
    s.absorb = std::move(absorb);
    s.emit = [local](uint64_t off, std::byte* dst, uint32_t len) { std::memcpy(dst, local + off, len); };
    return s;
}

/// Eager operations (Engine::execute_eager).
void take_copy(void* dst, const std::byte* payload, uint32_t len) { std::memcpy(dst, payload, len); }
EagerOp eager_send(int to, const std::byte* src, uint64_t bytes) {
    return EagerOp{true, false, to, static_cast<uint32_t>(bytes), src, nullptr, nullptr, nullptr, -1, -1, false};
}
EagerOp eager_recv(int from, uint64_t bytes, void (*take)(void*, const std::byte*, uint32_t), void* ctx) {
    return EagerOp{false, false, from, static_cast<uint32_t>(bytes), nullptr, nullptr, take, ctx, -1, -1, false};
}
/// A message the receiver copies to `dst` unchanged (EagerOp::copy: placed directly from direct_min bytes on).
EagerOp eager_copy_send(int to, const std::byte* src, uint64_t bytes) {
    EagerOp op = eager_send(to, src, bytes);
    op.copy = true;
    return op;
}
EagerOp eager_copy_recv(int from, uint64_t bytes, std::byte* dst) {
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

    int add(Step&& s) {
        steps.push_back(std::move(s));
        return static_cast<int>(steps.size()) - 1;
    }
    void run(IdleCopy idle = {}) { e.execute(steps, epoch, sig, what, idle); }
    template <std::size_t N>
    void run_eager(std::array<EagerOp, N>& ops, std::size_t used, IdleCopy idle = {}) {
        e.execute_eager(ops.data(), used, epoch, sig, what, idle);
    }
    std::size_t elems(uint32_t len) const { return len / es; }
};

std::byte* B(void* p) { return static_cast<std::byte*>(p); }
const std::byte* CB(const void* p) { return static_cast<const std::byte*>(p); }

// ---- barrier --------------------------------------------------------------------------------------

const char* barrier(Call& c) {
    int prev_recv = -1;
    for (int d = 1; d < c.n; d <<= 1) {
        Step s = send_step(mod(c.r + d, c.n), 0, nullptr);
        if (prev_recv >= 0) s.after.push_back(prev_recv);
        c.add(std::move(s));
        // Rounds complete in order: a round's message certifies every earlier round of its sender.
        Step rv = recv_step(mod(c.r - d, c.n), 0, nullptr);
        if (prev_recv >= 0) rv.after.push_back(prev_recv);
        prev_recv = c.add(std::move(rv));
    }
    c.run();
    return "dissemination";
}

// ---- broadcast ------------------------------------------------------------------------------------

const char* broadcast(Call& c, std::byte* buf, uint64_t bytes, bool tree) {
    const int v = mod(c.r - c.a.root, c.n);
    auto real = [&](int vr) { return mod(vr + c.a.root, c.n); };
    const bool flat = tree && c.n <= k_flat_bcast_ranks && bytes <= c.e.payload() && c.e.all_connected() &&
                      (bytes <= k_flat_bcast_small || c.e.config().oversubscribed);
    if (tree && c.e.eager_copy_fits(bytes)) {
        // One message per rank: the same flat or binomial pattern without a schedule.
        std::array<EagerOp, 34> ops;
        std::size_t k = 0;
        if (flat) {
            if (v == 0)
                for (int t = 1; t < c.n; ++t) ops[k++] = eager_copy_send(real(t), buf, bytes);
            else
                ops[k++] = eager_copy_recv(c.a.root, bytes, buf);
        } else {
            int mask = 1;
            while (mask < c.n && (v & mask) == 0) mask <<= 1;
            if (mask < c.n) ops[k++] = eager_copy_recv(real(v - mask), bytes, buf);
            for (mask >>= 1; mask > 0; mask >>= 1)
                if (v + mask < c.n) ops[k++] = eager_copy_send(real(v + mask), buf, bytes);
        }
        c.run_eager(ops, k);
        return flat ? "flat" : "binomial";
    }
    if (flat) {
        // Flat: the root writes every copy itself, so no rank waits for another to forward (on oversubscribed
        // cores a forward waits for that rank's next time slice). With a core per rank, larger messages keep the
        // tree: the root's copies would run one after the other.
        if (v == 0) {
            for (int t = 1; t < c.n; ++t) c.add(copy_send(real(t), bytes, buf));
        } else {
            c.add(copy_recv(c.a.root, bytes, buf));
        }
        c.run();
        return "flat";
    }
    if (tree) {
        int mask = 1;
        int recv = -1;
        while (mask < c.n) {
            if (v & mask) {
                recv = c.add(recv_step(real(v - mask), bytes,
                                       [buf](uint64_t off, const std::byte* src, uint32_t len) {
                                           std::memcpy(buf + off, src, len);
                                       }));
                break;
            }
            mask <<= 1;
        }
        for (mask >>= 1; mask > 0; mask >>= 1) {
            if (v + mask >= c.n) continue;
            Step s = send_step(real(v + mask), bytes, [buf](uint64_t off, std::byte* dst, uint32_t len) {
                std::memcpy(dst, buf + off, len);
            });
            s.gate = recv;
            c.add(std::move(s));
        }
        c.run();
        return "binomial";
    }
    const int prev = mod(c.r - 1, c.n);
    const int next = mod(c.r + 1, c.n);
    if (v == 0)
        c.add(copy_send(next, bytes, buf));
    else if (v < c.n - 1)
        c.add(copy_fwd(prev, next, bytes, buf));
    else
        c.add(copy_recv(prev, bytes, buf));
    c.run();
    return "chain";
}

// ---- allreduce ------------------------------------------------------------------------------------

const char* allreduce_rd(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes) {
    if (src != dst) std::memcpy(dst, src, bytes);
    const int p2 = core_size(c.n);
    const int rem = c.n - p2;
    // The step functions capture one pointer (no std::function allocation); chunk gates instead of `after`
    // lists order the rounds (no allocation either) and let a round's chunk go out as soon as the previous round
    // reduced it.
    struct Ctx {
        Reducer k;
        std::size_t es;
        std::byte* dst;
    };
    const Ctx ctx{c.k, c.es, dst};
    const Ctx* x = &ctx;
    auto produce = [x](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, x->dst + off, len); };
    auto reduce_in = [x](uint64_t off, const std::byte* in, uint32_t len) { x->k.acc(x->dst + off, in, len / x->es); };
    if (c.e.eager_fits(bytes)) {
        // One message per round: the same exchanges without a schedule.
        auto take_acc = [](void* arg, const std::byte* in, uint32_t len) {
            const auto* y = static_cast<const Ctx*>(arg);
            y->k.acc(y->dst, in, len / y->es);
        };
        void* cx = const_cast<Ctx*>(x);
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
        return "recursive_doubling";
    }
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
        return "recursive_doubling";
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
    return "recursive_doubling";
}

/// Ring reduce-scatter + allgather as one pipeline: every received chunk is reduced (or copied) straight into
/// the staging slot of the next message.
const char* allreduce_ring(Call& c, const std::byte* src, std::byte* dst, uint64_t count) {
    const int n = c.n;
    const int r = c.r;
    const int prev = mod(r - 1, n);
    const int next = mod(r + 1, n);
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

// ---- recursive halving / doubling on the power-of-two core ------------------------------------------
//
// p2 is the largest power of two <= n, rem = n - p2. Ranks r >= p2 fold into r - p2 (which reduces their whole
// vector into its own), and the p2 ranks of the core split the vector into p2 pieces, piece i ending up with
// core rank i. Every stream of these schedules is a run of whole pieces in piece order, so that the streams of
// later rounds are sub-streams of earlier ones and chunks can be gated on exactly the bytes they depend on:
// allreduce piece i is segment i of a balanced split (piece order = buffer order); reduce_scatter piece i is
// block i followed, for i < rem, by block i + p2 (the block of the folded rank travels with its partner's).

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

// ---- reduce ---------------------------------------------------------------------------------------

const char* reduce(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes, bool tree) {
    const int n = c.n;
    const int v = mod(c.r - c.a.root, n);
    auto real = [&](int vr) { return mod(vr + c.a.root, n); };
    const std::size_t es = c.es;
    const Reducer k = c.k;
    if (tree) {
        std::vector<int> children;
        int parent = -1;
        for (int mask = 1; mask < n; mask <<= 1) {
            if (v & mask) {
                parent = v - mask;
                break;
            }
            if (v + mask < n) children.push_back(v + mask);
        }
        std::vector<std::byte> tmp;
        std::byte* accum = nullptr;
        if (v == 0) {
            accum = dst;
            if (src != dst) std::memcpy(dst, src, bytes);
        } else if (!children.empty()) {
            tmp.assign(src, src + bytes);
            accum = tmp.data();
        }
        std::vector<int> recvs;
        for (int ch : children)
            recvs.push_back(c.add(recv_step(real(ch), bytes, [accum, k, es](uint64_t off, const std::byte* in, uint32_t len) {
                k.acc(accum + off, in, len / es);
            })));
        if (parent >= 0) {
            const std::byte* from = accum ? accum : src;
            Step s = send_step(real(parent), bytes, [from](uint64_t off, std::byte* out, uint32_t len) {
                std::memcpy(out, from + off, len);
            });
            s.after = recvs;
            c.add(std::move(s));
        }
        c.run();
        return "binomial";
    }
    // Chain n-1 -> ... -> 0 (root): each link reduces its contribution into the passing chunk.
    const int toward_root = mod(c.r - 1, n);
    const int from_tail = mod(c.r + 1, n);
    if (v == n - 1) {
        c.add(send_step(toward_root, bytes, [src](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, src + off, len); }));
    } else if (v > 0) {
        c.add(fwd_step(from_tail, toward_root, bytes, [src, k, es](uint64_t off, const std::byte* in, std::byte* out, uint32_t len) {
            k.red3(out, in, src + off, len / es);
        }));
    } else {
        const bool in_place = src == dst;
        c.add(recv_step(from_tail, bytes, [src, dst, k, es, in_place](uint64_t off, const std::byte* in, uint32_t len) {
            if (in_place)
                k.acc(dst + off, in, len / es);
            else
                k.red3(dst + off, in, src + off, len / es);
        }));
    }
    c.run();
    return "chain";
}

// ---- gather / scatter -------------------------------------------------------------------------------

/// Copies [off, off+len) of a run of blocks starting at virtual rank `first` between a contiguous stream and a
/// rank-ordered buffer (virtual rank u lives at block (u + root) % n).
void rotated_copy(std::byte* ranked, const std::byte* stream_in, std::byte* stream_out, int first, uint64_t off,
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
int subtree(int v, int n) {
    int low = 1;
    if (v == 0) {
        while (low < n) low <<= 1;
    } else {
        low = v & -v;
    }
    return std::min(low, n - v);
}

const char* gather(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int root = c.a.root;
    const int v = mod(c.r - root, n);
    const int sz = subtree(v, n);
    std::vector<std::byte> tmp;
    if (v == 0) {
        if (src != nullptr) std::memcpy(dst + static_cast<uint64_t>(c.r) * bb, src, bb);
    } else if (sz > 1) {
        tmp.resize(static_cast<uint64_t>(sz) * bb);
        std::memcpy(tmp.data(), src, bb);
    }
    std::byte* t = tmp.data();
    std::vector<int> recvs;
    for (int m = 1; m < sz; m <<= 1) {
        const int child = v + m;
        const uint64_t cbytes = static_cast<uint64_t>(subtree(child, n)) * bb;
        if (v == 0) {
            recvs.push_back(c.add(recv_step(mod(child + root, n), cbytes,
                                            [dst, child, bb, root, n](uint64_t off, const std::byte* in, uint32_t len) {
                                                rotated_copy(dst, in, nullptr, child, off, len, bb, root, n);
                                            })));
        } else {
            std::byte* at = t + static_cast<uint64_t>(m) * bb;
            recvs.push_back(c.add(recv_step(mod(child + root, n), cbytes, [at](uint64_t off, const std::byte* in, uint32_t len) {
                std::memcpy(at + off, in, len);
            })));
        }
    }
    if (v != 0) {
        const int parent = v - (v & -v);
        const std::byte* from = sz > 1 ? t : src;
        Step s = send_step(mod(parent + root, n), static_cast<uint64_t>(sz) * bb,
                           [from](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, from + off, len); });
        s.after = recvs;
        c.add(std::move(s));
    }
    c.run();
    return "binomial";
}

const char* scatter(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int root = c.a.root;
    const int v = mod(c.r - root, n);
    const int sz = subtree(v, n);
    std::vector<std::byte> tmp;
    int recv = -1;
    if (v != 0) {
        const int parent = v - (v & -v);
        std::byte* into = dst;
        if (sz > 1) {
            tmp.resize(static_cast<uint64_t>(sz) * bb);
            into = tmp.data();
        }
        recv = c.add(recv_step(mod(parent + root, n), static_cast<uint64_t>(sz) * bb,
                               [into](uint64_t off, const std::byte* in, uint32_t len) { std::memcpy(into + off, in, len); }));
    }
    const std::byte* t = tmp.data();
    for (int m = 1; m < sz; m <<= 1) {
        const int child = v + m;
        const uint64_t cbytes = static_cast<uint64_t>(subtree(child, n)) * bb;
        if (v == 0) {
            c.add(send_step(mod(child + root, n), cbytes, [src, child, bb, root, n](uint64_t off, std::byte* out, uint32_t len) {
                rotated_copy(const_cast<std::byte*>(src), nullptr, out, child, off, len, bb, root, n);
            }));
        } else {
            const std::byte* at = t + static_cast<uint64_t>(m) * bb;
            Step s = send_step(mod(child + root, n), cbytes,
                               [at](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, at + off, len); });
            s.gate = recv;
            s.gate_shift = static_cast<uint64_t>(m) * bb;
            c.add(std::move(s));
        }
    }
    c.run();
    if (v == 0) {
        if (dst != nullptr) std::memcpy(dst, src + static_cast<uint64_t>(c.r) * bb, bb);
    } else if (sz > 1) {
        std::memcpy(dst, t, bb);
    }
    return "binomial";
}

// ---- allgather ------------------------------------------------------------------------------------

/// Ring allgather; the own block goes out from `own` (the send buffer, or dst's own block in place) and is
/// copied into dst while the schedule waits.
const char* allgather(Call& c, std::byte* dst, uint64_t bb, const std::byte* own) {
    const int n = c.n;
    const int r = c.r;
    const int prev = mod(r - 1, n);
    const int next = mod(r + 1, n);
    if (c.e.eager_copy_fits(bb) && n <= 9) {
        // Round k passes block r - k on and receives block r - k - 1 (the next round's send).
        std::array<EagerOp, 16> ops;
        std::size_t k = 0;
        for (int step = 0; step < n - 1; ++step) {
            const int out = mod(r - step, n);
            ops[k++] = eager_copy_send(next, step == 0 ? own : dst + static_cast<uint64_t>(out) * bb, bb);
            ops[k++] = eager_copy_recv(prev, bb, dst + static_cast<uint64_t>(mod(r - step - 1, n)) * bb);
        }
        c.run_eager(ops, k, {dst + static_cast<uint64_t>(r) * bb, own, bb});
        return "ring";
    }
    c.add(copy_send(next, bb, own));
    for (int step = 0; step <= n - 3; ++step)
        c.add(copy_fwd(prev, next, bb, dst + static_cast<uint64_t>(mod(r - 1 - step, n)) * bb));
    c.add(copy_recv(prev, bb, dst + static_cast<uint64_t>(mod(r + 1, n)) * bb));
    c.run({dst + static_cast<uint64_t>(r) * bb, own, bb});
    return "ring";
}

/// Bruck allgather: ceil(log2 n) rounds; round k sends the first min(2^k, n - 2^k) blocks of the rotated
/// buffer to rank - 2^k and appends the same number from rank + 2^k.
const char* allgather_bruck(Call& c, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int r = c.r;
    std::vector<std::byte> tmp(static_cast<uint64_t>(n) * bb);
    std::byte* t = tmp.data();
    std::memcpy(t, dst + static_cast<uint64_t>(r) * bb, bb);
    if (c.e.eager_fits(static_cast<uint64_t>(n / 2) * bb)) {
        std::array<EagerOp, 64> ops; // 2 per round, at most 32 rounds
        std::size_t k = 0;
        for (int d = 1; d < n; d <<= 1) {
            const uint64_t blocks = static_cast<uint64_t>(std::min(d, n - d));
            ops[k++] = eager_send(mod(r - d, n), t, blocks * bb);
            ops[k++] = eager_recv(mod(r + d, n), blocks * bb, take_copy, t + static_cast<uint64_t>(d) * bb);
        }
        c.run_eager(ops, k);
        for (int i = 0; i < n; ++i)
            std::memcpy(dst + static_cast<uint64_t>(mod(r + i, n)) * bb, t + static_cast<uint64_t>(i) * bb, bb);
        return "bruck";
    }
    int prev_recv = -1;
    for (int d = 1; d < n; d <<= 1) {
        const uint64_t blocks = static_cast<uint64_t>(std::min(d, n - d));
        Step s = send_step(mod(r - d, n), blocks * bb, [t](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, t + off, len); });
        if (prev_recv >= 0) s.after.push_back(prev_recv);
        c.add(std::move(s));
        std::byte* at = t + static_cast<uint64_t>(d) * bb;
        Step rv = recv_step(mod(r + d, n), blocks * bb, [at](uint64_t off, const std::byte* in, uint32_t len) { std::memcpy(at + off, in, len); });
        if (prev_recv >= 0) rv.after.push_back(prev_recv);
        prev_recv = c.add(std::move(rv));
    }
    c.run();
    for (int i = 0; i < n; ++i)
        std::memcpy(dst + static_cast<uint64_t>(mod(r + i, n)) * bb, t + static_cast<uint64_t>(i) * bb, bb);
    return "bruck";
}

// ---- reduce_scatter -------------------------------------------------------------------------------

const char* reduce_scatter(Call& c, const std::byte* src, std::byte* dst, uint64_t rc) {
    const int n = c.n;
    const int r = c.r;
    const int prev = mod(r - 1, n);
    const int next = mod(r + 1, n);
    const std::size_t es = c.es;
    const Reducer k = c.k;
    const uint64_t bb = rc * es;
    auto seg = [&](int s) { return src + static_cast<uint64_t>(s) * bb; };
    if (n == 2 && c.e.eager_fits(bb)) {
        // One exchange: the peer's segment out, this rank's segment reduced with what comes in.
        struct Ctx {
            Reducer k;
            std::size_t es;
            const std::byte* mine;
            std::byte* res;
        } x{k, es, seg(r), src == dst ? const_cast<std::byte*>(seg(r)) : dst};
        auto take = [](void* arg, const std::byte* in, uint32_t len) {
            const auto* y = static_cast<const Ctx*>(arg);
            if (y->mine == y->res)
                y->k.acc(y->res, in, len / y->es);
            else
                y->k.red3(y->res, in, y->mine, len / y->es);
        };
        std::array<EagerOp, 2> ops{eager_send(next, seg(mod(r - 1, n)), bb), eager_recv(prev, bb, take, &x)};
        c.run_eager(ops, ops.size());
        if (x.res != dst) std::memmove(dst, x.res, bb);
        return "ring";
    }
    {
        const std::byte* s0 = seg(mod(r - 1, n));
        c.add(send_step(next, bb, [s0](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, s0 + off, len); }));
    }
    // Local room for partial segments whose forwarding is blocked (allocated on first use).
    std::vector<std::vector<std::byte>> spill(static_cast<std::size_t>(std::max(0, n - 2)));
    for (int step = 0; step <= n - 3; ++step) {
        const std::byte* mine = seg(mod(r - 2 - step, n));
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
    const std::byte* mine = seg(r);
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

// ---- alltoall -------------------------------------------------------------------------------------

const char* alltoall_pairwise(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int r = c.r;
    const auto own = static_cast<uint64_t>(r) * bb;
    if (c.e.eager_copy_fits(bb) && n <= 9) {
        std::array<EagerOp, 16> ops;
        std::size_t k = 0;
        for (int s = 1; s < n; ++s)
            ops[k++] = eager_copy_send(mod(r + s, n), src + static_cast<uint64_t>(mod(r + s, n)) * bb, bb);
        for (int s = 1; s < n; ++s)
            ops[k++] = eager_copy_recv(mod(r - s, n), bb, dst + static_cast<uint64_t>(mod(r - s, n)) * bb);
        c.run_eager(ops, k, {dst + own, src + own, bb});
        return "pairwise";
    }
    c.steps.reserve(2 * static_cast<std::size_t>(n - 1));
    for (int s = 1; s < n; ++s) {
        const int to = mod(r + s, n);
        c.add(copy_send(to, bb, src + static_cast<uint64_t>(to) * bb));
        const int fr = mod(r - s, n);
        c.add(copy_recv(fr, bb, dst + static_cast<uint64_t>(fr) * bb));
    }
    c.run({dst + own, src + own, bb}); // the own block, while waiting for the peers
    return "pairwise";
}

/// Bruck alltoall: rotate, ceil(log2 n) rounds sending the blocks whose index has bit k set to rank + 2^k,
/// inverse rotation.
const char* alltoall_bruck(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int r = c.r;
    std::vector<std::byte> tmp(static_cast<uint64_t>(n) * bb);
    std::byte* t = tmp.data();
    for (int i = 0; i < n; ++i)
        std::memcpy(t + static_cast<uint64_t>(i) * bb, src + static_cast<uint64_t>(mod(r + i, n)) * bb, bb);
    // Index lists per round live as long as the schedule.
    std::vector<std::vector<int>> lists;
    for (int d = 1; d < n; d <<= 1) {
        std::vector<int> idx;
        for (int i = 0; i < n; ++i)
            if (i & d) idx.push_back(i);
        lists.push_back(std::move(idx));
    }
    int prev_recv = -1;
    std::size_t li = 0;
    for (int d = 1; d < n; d <<= 1, ++li) {
        const std::vector<int>* idx = &lists[li];
        const uint64_t bytes = static_cast<uint64_t>(idx->size()) * bb;
        auto pack = [t, idx, bb](uint64_t off, std::byte* out, const std::byte* in, uint32_t len) {
            uint64_t done = 0;
            while (done < len) {
                const uint64_t pos = off + done;
                const uint64_t j = pos / bb;
                const uint64_t within = pos % bb;
                const uint64_t take = std::min<uint64_t>(bb - within, len - done);
                std::byte* block = t + static_cast<uint64_t>((*idx)[j]) * bb + within;
                if (in)
                    std::memcpy(block, in + done, take);
                else
                    std::memcpy(out + done, block, take);
                done += take;
            }
        };
        Step s = send_step(mod(r + d, n), bytes, [pack](uint64_t off, std::byte* out, uint32_t len) { pack(off, out, nullptr, len); });
        if (prev_recv >= 0) s.after.push_back(prev_recv);
        const int si = c.add(std::move(s));
        Step rv = recv_step(mod(r - d, n), bytes, [pack](uint64_t off, const std::byte* in, uint32_t len) { pack(off, nullptr, in, len); });
        rv.gate = si;
        if (prev_recv >= 0) rv.after.push_back(prev_recv);
        prev_recv = c.add(std::move(rv));
    }
    c.run();
    for (int i = 0; i < n; ++i)
        std::memcpy(dst + static_cast<uint64_t>(mod(r - i, n)) * bb, t + static_cast<uint64_t>(i) * bb, bb);
    return "bruck";
}

}  // namespace

namespace {
/// The step vector of this thread's last call (emptied, capacity kept): a call's schedule needs no allocation.
std::vector<Step>& spare_steps() {
    thread_local std::vector<Step> spare;
    return spare;
}
/// Hands a call's step vector back to spare_steps() however the call ends.
struct ReturnSteps {
    std::vector<Step>& steps;
    ~ReturnSteps() {
        steps.clear();
        if (steps.capacity() <= 256) spare_steps() = std::move(steps);
    }
};
}  // namespace

const char* run_collective(Engine& e, CollKind kind, const CallArgs& a, const Thresholds& th, uint64_t epoch) {
    Call c{e, a, epoch, {}, kind_name(kind), e.rank(), e.size(), mpi::size_of(a.type), {}, std::move(spare_steps())};
    ReturnSteps return_steps{c.steps};
    c.steps.clear();
    c.sig.kind = kind;
    c.sig.dtype = static_cast<uint32_t>(a.type);
    c.sig.count = a.count;
    c.sig.root = a.root;
    c.sig.op = static_cast<uint32_t>(a.op);
    // most schedules; avoids regrowing (and moving Steps) while they are built (kept for the next call)
    if (c.steps.capacity() < 8) c.steps.reserve(8);
    const bool reduction = kind == CollKind::reduce || kind == CollKind::allreduce || kind == CollKind::reduce_scatter;
    if (reduction) {
        c.k.cpu = kernels(a.type, a.op);
        c.k.type = a.type;
        c.k.op = a.op;
        // Types the user logic does not implement stay on the CPU.
        if (a.offload != nullptr && a.offload->supports(a.type, a.op)) c.k.offload = a.offload;
    }
    const int n = c.n;
    const uint64_t bytes = a.count * c.es;
    const std::byte* src = CB(a.in_place ? a.recv : a.send);
    std::byte* dst = B(a.recv);

    if (kind == CollKind::barrier) return n == 1 ? "none" : barrier(c);
    if (a.count == 0) return "none";
    switch (kind) {
    case CollKind::broadcast:
        if (n == 1) return "none";
        return broadcast(c, dst, bytes, bytes <= th.tree_small);
    case CollKind::allreduce:
        if (n == 1) {
            if (!a.in_place) std::memcpy(dst, src, bytes);
            return "none";
        }
        if (bytes <= th.allreduce_small || a.count < static_cast<uint64_t>(n)) return allreduce_rd(c, src, dst, bytes);
        // With two ranks Rabenseifner and the ring make the same two exchanges; the ring's schedule is leaner.
        if (bytes <= th.allreduce_large && n > 2) return allreduce_rabenseifner(c, src, dst, a.count);
        return allreduce_ring(c, src, dst, a.count);
    case CollKind::reduce:
        if (n == 1) {
            if (!a.in_place) std::memcpy(dst, src, bytes);
            return "none";
        }
        return reduce(c, src, e.rank() == a.root ? dst : nullptr, bytes, bytes <= th.tree_small);
    case CollKind::gather: {
        const std::byte* s = (e.rank() == a.root && a.in_place) ? nullptr : CB(a.send);
        if (n == 1) {
            if (s) std::memcpy(dst, s, bytes);
            return "none";
        }
        return gather(c, s, dst, bytes);
    }
    case CollKind::scatter: {
        std::byte* d = (e.rank() == a.root && a.in_place) ? nullptr : dst;
        if (n == 1) {
            if (d) std::memcpy(d, a.send, bytes);
            return "none";
        }
        return scatter(c, CB(a.send), d, bytes);
    }
    case CollKind::allgather: {
        std::byte* own = dst + static_cast<uint64_t>(e.rank()) * bytes;
        // Bruck saves rounds from 4 ranks on; with 2 or 3 it is the ring plus a rotation.
        if (n == 1 || (bytes <= th.allgather_small && n > 3)) {
            if (!a.in_place) std::memcpy(own, a.send, bytes);
            return n == 1 ? "none" : allgather_bruck(c, dst, bytes);
        }
        // Ring: the own block is sent straight from the send buffer and copied into place while the schedule
        // waits, so the copy does not delay the first chunk (measured: 1 MiB on 2 ranks, the copy first cost ~25 %).
        return allgather(c, dst, bytes, a.in_place ? own : CB(a.send));
    }
    case CollKind::reduce_scatter:
        if (n == 1) {
            if (!a.in_place) std::memcpy(dst, src, bytes);
            return "none";
        }
        // With two ranks recursive halving is the ring's single exchange.
        if (bytes * static_cast<uint64_t>(n) <= th.reduce_scatter_small && n > 2)
            return reduce_scatter_halving(c, src, dst, a.count);
        return reduce_scatter(c, src, dst, a.count);
    case CollKind::alltoall: {
        std::vector<std::byte> copy;
        if (a.in_place) {
            copy.assign(dst, dst + bytes * static_cast<uint64_t>(n));
            src = copy.data();
        }
        const auto own = static_cast<uint64_t>(e.rank()) * bytes;
        // Pairwise posts every block at once (one round of latency); Bruck needs log2 n rounds but only
        // O(log n) queue pairs and fewer, larger messages for many ranks.
        if (n > 1 && e.all_connected() && (bytes > th.alltoall_small || n <= 8)) {
            // The own block is copied while the schedule waits (after its chunks are out), not before them.
            return alltoall_pairwise(c, src, dst, bytes);
        }
        std::memcpy(dst + own, src + own, bytes);
        if (n == 1) return "none";
        return alltoall_bruck(c, src, dst, bytes);
    }
    case CollKind::barrier: break;
    }
    return "none";
}

}  // namespace coyote::detail::coll
