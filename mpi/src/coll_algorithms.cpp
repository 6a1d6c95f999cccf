// coyote-mpi collectives: the algorithms, each a schedule of send / receive / forward streams run by the engine.
// Peers are always rank +- 2^k (mod N), so a QpSet of PeerSet::log serves every algorithm; pairwise alltoall
// (every peer) is used only when all peers are connected.
#include <coyote/mpi/collectives_engine.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace coyote::detail::coll {

namespace {

using Kind = Step::Kind;

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
    std::string what;
    int r;
    int n;
    std::size_t es;
    Reducer k;
    std::vector<Step> steps;

    int add(Step s) {
        steps.push_back(std::move(s));
        return static_cast<int>(steps.size()) - 1;
    }
    void run() { e.execute(steps, epoch, sig, what); }
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
    int p2 = 1;
    while (p2 * 2 <= c.n) p2 *= 2;
    const int rem = c.n - p2;
    const Reducer k = c.k;
    const std::size_t es = c.es;
    auto produce = [dst](uint64_t off, std::byte* out, uint32_t len) { std::memcpy(out, dst + off, len); };
    auto reduce_in = [dst, k, es](uint64_t off, const std::byte* in, uint32_t len) { k.acc(dst + off, in, len / es); };
    if (c.r >= p2) {
        const int partner = c.r - p2;
        const int s = c.add(send_step(partner, bytes, produce));
        Step rv = recv_step(partner, bytes, [dst](uint64_t off, const std::byte* in, uint32_t len) {
            std::memcpy(dst + off, in, len);
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
        if (last_recv >= 0) s.after.push_back(last_recv);
        const int si = c.add(std::move(s));
        Step rv = recv_step(partner, bytes, reduce_in);
        rv.gate = si;
        last_recv = c.add(std::move(rv));
    }
    if (c.r < rem) {
        Step s = send_step(c.r + p2, bytes, produce);
        if (last_recv >= 0) s.after.push_back(last_recv);
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

const char* allgather(Call& c, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int r = c.r;
    const int prev = mod(r - 1, n);
    const int next = mod(r + 1, n);
    c.add(copy_send(next, bb, dst + static_cast<uint64_t>(r) * bb));
    for (int step = 0; step <= n - 3; ++step)
        c.add(copy_fwd(prev, next, bb, dst + static_cast<uint64_t>(mod(r - 1 - step, n)) * bb));
    c.add(copy_recv(prev, bb, dst + static_cast<uint64_t>(mod(r + 1, n)) * bb));
    c.run();
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

// ---- alltoall -------------------------------------------------------------------------------------

const char* alltoall_pairwise(Call& c, const std::byte* src, std::byte* dst, uint64_t bb) {
    const int n = c.n;
    const int r = c.r;
    for (int s = 1; s < n; ++s) {
        const int to = mod(r + s, n);
        c.add(copy_send(to, bb, src + static_cast<uint64_t>(to) * bb));
        const int fr = mod(r - s, n);
        c.add(copy_recv(fr, bb, dst + static_cast<uint64_t>(fr) * bb));
    }
    c.run();
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

const char* run_collective(Engine& e, CollKind kind, const CallArgs& a, const Thresholds& th, uint64_t epoch) {
    Call c{e, a, epoch, {}, std::string(kind_name(kind)), e.rank(), e.size(), mpi::size_of(a.type), {}, {}};
    c.sig.kind = kind;
    c.sig.dtype = static_cast<uint32_t>(a.type);
    c.sig.count = a.count;
    c.sig.root = a.root;
    c.sig.op = static_cast<uint32_t>(a.op);
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
    case CollKind::allgather:
        if (!a.in_place) std::memcpy(dst + static_cast<uint64_t>(e.rank()) * bytes, a.send, bytes);
        if (n == 1) return "none";
        // Bruck saves rounds from 4 ranks on; with 2 or 3 it is the ring plus a rotation.
        if (bytes <= th.allgather_small && n > 3) return allgather_bruck(c, dst, bytes);
        return allgather(c, dst, bytes);
    case CollKind::reduce_scatter:
        if (n == 1) {
            if (!a.in_place) std::memcpy(dst, src, bytes);
            return "none";
        }
        return reduce_scatter(c, src, dst, a.count);
    case CollKind::alltoall: {
        std::vector<std::byte> copy;
        if (a.in_place) {
            copy.assign(dst, dst + bytes * static_cast<uint64_t>(n));
            src = copy.data();
        }
        std::memcpy(dst + static_cast<uint64_t>(e.rank()) * bytes, src + static_cast<uint64_t>(e.rank()) * bytes, bytes);
        if (n == 1) return "none";
        // Pairwise posts every block at once (one round of latency); Bruck needs log2 n rounds but only
        // O(log n) queue pairs and fewer, larger messages for many ranks.
        if (e.all_connected() && (bytes > th.alltoall_small || n <= 8)) return alltoall_pairwise(c, src, dst, bytes);
        return alltoall_bruck(c, src, dst, bytes);
    }
    case CollKind::barrier: break;
    }
    return "none";
}

}  // namespace coyote::detail::coll
