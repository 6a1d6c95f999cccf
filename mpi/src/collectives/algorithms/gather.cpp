// coyote-mpi collectives: binomial gather.
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

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
}  // namespace coyote::detail::coll::algo
