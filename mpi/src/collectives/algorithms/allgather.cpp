// coyote-mpi collectives: allgather (ring, Bruck).
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

/// Ring allgather; the own block goes out from `own` (the send buffer, or dst's own block in place) and is
/// copied into dst while the schedule waits.
const char* allgather_ring(Call& c, std::byte* dst, uint64_t bb, const std::byte* own) {
    const int n = c.n;
    const int r = c.r;
    const auto [prev, next] = ring_neighbours(c);
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
}  // namespace coyote::detail::coll::algo
