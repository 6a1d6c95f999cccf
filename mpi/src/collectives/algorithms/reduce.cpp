// coyote-mpi collectives: reduce (binomial tree or chain to the root).
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

namespace {

/// Binomial tree: each rank reduces its children's vectors into its own (a copy unless at the root) and passes
/// the result to its parent.
const char* reduce_binomial(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes) {
    const int n = c.n;
    const int v = mod(c.r - c.a.root, n);
    auto real = [&](int vr) { return mod(vr + c.a.root, n); };
    const std::size_t es = c.es;
    const Reducer k = c.k;
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

}  // namespace

const char* reduce(Call& c, const std::byte* src, std::byte* dst, uint64_t bytes, bool tree) {
    if (tree) return reduce_binomial(c, src, dst, bytes);
    const int n = c.n;
    const int v = mod(c.r - c.a.root, n);
    const std::size_t es = c.es;
    const Reducer k = c.k;
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

}  // namespace coyote::detail::coll::algo
