// coyote-mpi collectives: broadcast (flat from the root, binomial tree, or pipelined chain).
#include "collectives/algorithms/algorithms.hpp"

namespace coyote::detail::coll::algo {

namespace {

/// Broadcasts of one message on up to this many ranks go out from the root to everyone (flat): messages up to
/// k_flat_bcast_small bytes always, larger ones (up to a chunk) when a node is oversubscribed.
constexpr int k_flat_bcast_ranks = 4;
constexpr uint64_t k_flat_bcast_small = 4096;

/// Rank of virtual rank vr (the root is virtual rank 0).
int real_rank(const Call& c, int vr) { return mod(vr + c.a.root, c.n); }

/// One message per rank: the flat or binomial pattern without a schedule.
const char* broadcast_eager(Call& c, std::byte* buf, uint64_t bytes, bool flat) {
    const int v = mod(c.r - c.a.root, c.n);
    std::array<EagerOp, 34> ops;
    std::size_t k = 0;
    if (flat) {
        if (v == 0)
            for (int t = 1; t < c.n; ++t) ops[k++] = eager_copy_send(real_rank(c, t), buf, bytes);
        else
            ops[k++] = eager_copy_recv(c.a.root, bytes, buf);
    } else {
        int mask = 1;
        while (mask < c.n && (v & mask) == 0) mask <<= 1;
        if (mask < c.n) ops[k++] = eager_copy_recv(real_rank(c, v - mask), bytes, buf);
        for (mask >>= 1; mask > 0; mask >>= 1)
            if (v + mask < c.n) ops[k++] = eager_copy_send(real_rank(c, v + mask), buf, bytes);
    }
    c.run_eager(ops, k);
    return flat ? "flat" : "binomial";
}

/// Flat: the root writes every copy itself, so no rank waits for another to forward (on oversubscribed cores a
/// forward waits for that rank's next time slice). With a core per rank, larger messages keep the tree: the
/// root's copies would run one after the other.
const char* broadcast_flat(Call& c, std::byte* buf, uint64_t bytes) {
    if (c.r == c.a.root) {
        for (int t = 1; t < c.n; ++t) c.add(copy_send(real_rank(c, t), bytes, buf));
    } else {
        c.add(copy_recv(c.a.root, bytes, buf));
    }
    c.run();
    return "flat";
}

/// Binomial tree: receive from the parent, then pass every chunk on to the children as it arrives.
const char* broadcast_binomial(Call& c, std::byte* buf, uint64_t bytes) {
    const int v = mod(c.r - c.a.root, c.n);
    int mask = 1;
    int recv = -1;
    while (mask < c.n) {
        if (v & mask) {
            recv = c.add(recv_step(real_rank(c, v - mask), bytes, [buf](uint64_t off, const std::byte* src, uint32_t len) {
                std::memcpy(buf + off, src, len);
            }));
            break;
        }
        mask <<= 1;
    }
    for (mask >>= 1; mask > 0; mask >>= 1) {
        if (v + mask >= c.n) continue;
        Step s = send_step(real_rank(c, v + mask), bytes, [buf](uint64_t off, std::byte* dst, uint32_t len) {
            std::memcpy(dst, buf + off, len);
        });
        s.gate = recv;
        c.add(std::move(s));
    }
    c.run();
    return "binomial";
}

/// Pipelined chain root -> root + 1 -> ... (copy streams).
const char* broadcast_chain(Call& c, std::byte* buf, uint64_t bytes) {
    const int v = mod(c.r - c.a.root, c.n);
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

}  // namespace

const char* broadcast(Call& c, std::byte* buf, uint64_t bytes, bool tree) {
    const bool flat = tree && c.n <= k_flat_bcast_ranks && bytes <= c.e.payload() && c.e.all_connected() &&
                      (bytes <= k_flat_bcast_small || c.e.config().oversubscribed);
    if (tree && c.e.eager_copy_fits(bytes)) return broadcast_eager(c, buf, bytes, flat);
    if (flat) return broadcast_flat(c, buf, bytes);
    if (tree) return broadcast_binomial(c, buf, bytes);
    return broadcast_chain(c, buf, bytes);
}

}  // namespace coyote::detail::coll::algo
