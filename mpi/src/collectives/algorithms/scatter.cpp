// coyote-mpi collectives: binomial scatter.
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

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
}  // namespace coyote::detail::coll::algo
