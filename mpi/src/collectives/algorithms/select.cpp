// coyote-mpi collectives: the selection policy: which algorithm runs a call, by kind, size and rank count
// (run_collective dispatches through a table of one small function per CollKind).
#include "collectives/algorithms/algorithms.hpp"

#include <array>
#include <cstring>
#include <vector>

namespace coyote::detail::coll {

namespace {

using algo::B;
using algo::Call;
using algo::CB;

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

// The call's buffers and sizes, as every selection below reads them.
uint64_t bytes_of(const Call& c) { return c.a.count * c.es; }
const std::byte* src_of(const Call& c) { return CB(c.a.in_place ? c.a.recv : c.a.send); }
std::byte* dst_of(const Call& c) { return B(c.a.recv); }

/// One rank: a reduction is a copy (none in place).
const char* reduce_alone(const Call& c) {
    if (!c.a.in_place) std::memcpy(dst_of(c), src_of(c), bytes_of(c));
    return "none";
}

const char* select_barrier(Call& c, const Thresholds&) { return c.n == 1 ? "none" : algo::barrier(c); }

const char* select_broadcast(Call& c, const Thresholds& th) {
    if (c.n == 1) return "none";
    return algo::broadcast(c, dst_of(c), bytes_of(c), bytes_of(c) <= th.tree_small);
}

const char* select_reduce(Call& c, const Thresholds& th) {
    if (c.n == 1) return reduce_alone(c);
    const uint64_t bytes = bytes_of(c);
    return algo::reduce(c, src_of(c), c.r == c.a.root ? dst_of(c) : nullptr, bytes, bytes <= th.tree_small);
}

const char* select_allreduce(Call& c, const Thresholds& th) {
    if (c.n == 1) return reduce_alone(c);
    const uint64_t bytes = bytes_of(c);
    if (bytes <= th.allreduce_small || c.a.count < static_cast<uint64_t>(c.n))
        return algo::allreduce_rd(c, src_of(c), dst_of(c), bytes);
    // With two ranks Rabenseifner and the ring make the same two exchanges; the ring's schedule is leaner.
    if (bytes <= th.allreduce_large && c.n > 2) return algo::allreduce_rabenseifner(c, src_of(c), dst_of(c), c.a.count);
    return algo::allreduce_ring(c, src_of(c), dst_of(c), c.a.count);
}

const char* select_gather(Call& c, const Thresholds&) {
    const std::byte* s = (c.r == c.a.root && c.a.in_place) ? nullptr : CB(c.a.send);
    if (c.n == 1) {
        if (s) std::memcpy(dst_of(c), s, bytes_of(c));
        return "none";
    }
    return algo::gather(c, s, dst_of(c), bytes_of(c));
}

const char* select_scatter(Call& c, const Thresholds&) {
    std::byte* d = (c.r == c.a.root && c.a.in_place) ? nullptr : dst_of(c);
    if (c.n == 1) {
        if (d) std::memcpy(d, c.a.send, bytes_of(c));
        return "none";
    }
    return algo::scatter(c, CB(c.a.send), d, bytes_of(c));
}

const char* select_allgather(Call& c, const Thresholds& th) {
    const uint64_t bytes = bytes_of(c);
    std::byte* dst = dst_of(c);
    std::byte* own = dst + static_cast<uint64_t>(c.r) * bytes;
    // Bruck saves rounds from 4 ranks on; with 2 or 3 it is the ring plus a rotation.
    if (c.n == 1 || (bytes <= th.allgather_small && c.n > 3)) {
        if (!c.a.in_place) std::memcpy(own, c.a.send, bytes);
        return c.n == 1 ? "none" : algo::allgather_bruck(c, dst, bytes);
    }
    // Ring: the own block is sent straight from the send buffer and copied into place while the schedule
    // waits, so the copy does not delay the first chunk (measured: 1 MiB on 2 ranks, the copy first cost ~25 %).
    return algo::allgather_ring(c, dst, bytes, c.a.in_place ? own : CB(c.a.send));
}

const char* select_reduce_scatter(Call& c, const Thresholds& th) {
    if (c.n == 1) return reduce_alone(c);
    // With two ranks recursive halving is the ring's single exchange.
    if (bytes_of(c) * static_cast<uint64_t>(c.n) <= th.reduce_scatter_small && c.n > 2)
        return algo::reduce_scatter_halving(c, src_of(c), dst_of(c), c.a.count);
    return algo::reduce_scatter_ring(c, src_of(c), dst_of(c), c.a.count);
}

const char* select_alltoall(Call& c, const Thresholds& th) {
    const uint64_t bytes = bytes_of(c);
    std::byte* dst = dst_of(c);
    const std::byte* src = src_of(c);
    std::vector<std::byte> copy;
    if (c.a.in_place) {
        copy.assign(dst, dst + bytes * static_cast<uint64_t>(c.n));
        src = copy.data();
    }
    // Pairwise posts every block at once (one round of latency); Bruck needs log2 n rounds but only
    // O(log n) queue pairs and fewer, larger messages for many ranks.
    if (c.n > 1 && c.e.all_connected() && (bytes > th.alltoall_small || c.n <= 8)) {
        // The own block is copied while the schedule waits (after its chunks are out), not before them.
        return algo::alltoall_pairwise(c, src, dst, bytes);
    }
    const auto own = static_cast<uint64_t>(c.r) * bytes;
    std::memcpy(dst + own, src + own, bytes);
    if (c.n == 1) return "none";
    return algo::alltoall_bruck(c, src, dst, bytes);
}

using Select = const char* (*)(Call&, const Thresholds&);

/// The selection of each kind, indexed by CollKind (0 unused).
constexpr std::array<Select, static_cast<std::size_t>(CollKind::alltoall) + 1> k_select = [] {
    std::array<Select, static_cast<std::size_t>(CollKind::alltoall) + 1> t{};
    t[static_cast<std::size_t>(CollKind::barrier)] = &select_barrier;
    t[static_cast<std::size_t>(CollKind::broadcast)] = &select_broadcast;
    t[static_cast<std::size_t>(CollKind::reduce)] = &select_reduce;
    t[static_cast<std::size_t>(CollKind::allreduce)] = &select_allreduce;
    t[static_cast<std::size_t>(CollKind::gather)] = &select_gather;
    t[static_cast<std::size_t>(CollKind::allgather)] = &select_allgather;
    t[static_cast<std::size_t>(CollKind::scatter)] = &select_scatter;
    t[static_cast<std::size_t>(CollKind::reduce_scatter)] = &select_reduce_scatter;
    t[static_cast<std::size_t>(CollKind::alltoall)] = &select_alltoall;
    return t;
}();

bool is_reduction(CollKind kind) {
    return kind == CollKind::reduce || kind == CollKind::allreduce || kind == CollKind::reduce_scatter;
}

/// The kernels of a reduction: the vFPGA's user logic when offloaded and it implements the type, else the CPU.
algo::Reducer reducer_of(const CallArgs& a) {
    algo::Reducer k;
    k.cpu = kernels(a.type, a.op);
    k.type = a.type;
    k.op = a.op;
    if (a.offload != nullptr && a.offload->supports(a.type, a.op)) k.offload = a.offload;
    return k;
}

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
    if (is_reduction(kind)) c.k = reducer_of(a);
    const auto index = static_cast<std::size_t>(kind);
    if (index >= k_select.size() || k_select[index] == nullptr) return "none";
    if (kind != CollKind::barrier && a.count == 0) return "none";
    return k_select[index](c, th);
}

}  // namespace coyote::detail::coll
