// coyote-mpi collectives: alltoall (pairwise, Bruck).
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

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
}  // namespace coyote::detail::coll::algo
