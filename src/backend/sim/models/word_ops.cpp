// coyote-mpi sim backend: the lane operations of word_ops.hpp, 128 bytes a step in 256-bit GCC/Clang vector types,
// compiled twice (AVX2 and the x86-64 baseline, picked at the first call): with 128-bit steps +1 over 1 MiB ran at
// 0.35 - 0.65x memcpy on the Zen 4 test machine, with 256-bit steps at memcpy's speed. Large operations are shared
// among the model threads (lane_pool.hpp). Past stream_from, the AVX2 kernel stores an output apart from its inputs
// past the caches: a 1 MiB add on one thread of a Xeon with 2 MiB of L2 went from 0.30 to 0.44x memcpy
// (docs/performance.md). The choice of kernel is a plain branch, not target_clones: the loader binds a target_clones
// function that the library calls itself while the library is still loading, before a sanitizer's runtime is ready
// (every ASan and TSan test process crashed at start).
#include "backend/sim/models/word_ops.hpp"

#include "backend/sim/models/lane_pool.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace coyote::detail::sim::lanes {

namespace {

using U32x8 = uint32_t __attribute__((vector_size(32)));
using F32x8 = float __attribute__((vector_size(32)));

enum class Op { increment, add_u32, add_f32 };

/// z = `op` of one vector (of 1 or 8 lanes). By reference: 256-bit vectors passed by value change the ABI.
template <Op op, typename U, typename F>
[[gnu::always_inline]] inline void apply_op(const U& x, const U& y, U& z) {
    if constexpr (op == Op::increment) {
        z = x + 1u;
    } else if constexpr (op == Op::add_u32) {
        z = x + y;
    } else {
        F fx, fy;
        std::memcpy(&fx, &x, sizeof fx);
        std::memcpy(&fy, &y, sizeof fy);
        const F fz = fx + fy;
        std::memcpy(&z, &fz, sizeof z);
    }
}

/// `op` over the `T`-sized units of [from, to): T is U32x8 (vector steps) or uint32_t (single lanes).
template <Op op, typename T, typename F>
[[gnu::always_inline]] inline void run(const std::byte* a, const std::byte* b, std::byte* out, std::size_t from, std::size_t to) {
    for (std::size_t i = from; i + sizeof(T) <= to; i += sizeof(T)) {
        T x, y{}, z;
        std::memcpy(&x, a + i, sizeof x);
        if constexpr (op != Op::increment) std::memcpy(&y, b + i, sizeof y);
        apply_op<op, T, F>(x, y, z);
        std::memcpy(out + i, &z, sizeof z);
    }
}

/// `op` over n bytes: 128 bytes a step (four vectors, unrolled), then single lanes. Always inlined, so that each
/// kernel below compiles it for its own instruction set.
template <Op op>
[[gnu::always_inline]] inline void apply(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    const std::size_t whole = n & ~std::size_t{127};
    for (std::size_t i = 0; i < whole; i += 128) {
        run<op, U32x8, F32x8>(a, b, out, i, i + 64);
        run<op, U32x8, F32x8>(a, b, out, i + 64, i + 128);
    }
    run<op, uint32_t, float>(a, b, out, whole, n);
}

/// Pieces of a job shared among the model threads: 64 KiB (about 2 us of work), a multiple of the 128-byte step.
constexpr std::size_t k_piece = 64 * 1024;

/// [p, p + n) and [q, q + n) do not overlap.
bool disjoint(const std::byte* p, const std::byte* q, std::size_t n) noexcept {
    const auto x = reinterpret_cast<std::uintptr_t>(p), y = reinterpret_cast<std::uintptr_t>(q);
    return x + n <= y || y + n <= x;
}

/// [p, p + n) and [q, q + n) are the same range or do not overlap (pieces may then run in any order).
bool independent(const std::byte* p, const std::byte* q, std::size_t n) noexcept {
    return p == q || disjoint(p, q, n);
}

template <Op op>
void kernel_baseline(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) noexcept {
    apply<op>(a, b, out, n);
}

#if defined(__x86_64__) || defined(__i386__)
template <Op op>
__attribute__((target("avx2"))) void kernel_avx2(const std::byte* a, const std::byte* b, std::byte* out,
                                                 std::size_t n) noexcept {
    apply<op>(a, b, out, n);
}

/// kernel_avx2 with non-temporal stores from the first 32-byte boundary of `out` on, then a store fence (the
/// completion that follows must not pass them). `out` is 4-byte aligned.
template <Op op>
__attribute__((target("avx2"))) void kernel_avx2_stream(const std::byte* a, const std::byte* b, std::byte* out,
                                                        std::size_t n) noexcept {
    std::size_t i = std::min(n, (32 - reinterpret_cast<std::uintptr_t>(out) % 32) % 32);
    apply<op>(a, b, out, i);
    for (; i + 32 <= n; i += 32) {
        U32x8 x, y{}, z;
        std::memcpy(&x, a + i, sizeof x);
        if constexpr (op != Op::increment) std::memcpy(&y, b + i, sizeof y);
        apply_op<op, U32x8, F32x8>(x, y, z);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<const __m256i&>(z));
    }
    apply<op>(a + i, b == nullptr ? nullptr : b + i, out + i, n - i);
    _mm_sfence();
}

bool have_avx2() noexcept {
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    }();
    return yes;
}
#endif

/// `op` over n bytes with the kernel for this CPU; `stream`: with non-temporal stores where the CPU has them.
template <Op op>
void dispatch(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n, bool stream) noexcept {
#if defined(__x86_64__) || defined(__i386__)
    if (have_avx2()) {
        if (stream) {
            kernel_avx2_stream<op>(a, b, out, n);
        } else {
            kernel_avx2<op>(a, b, out, n);
        }
        return;
    }
#endif
    kernel_baseline<op>(a, b, out, n);
}

/// One word operation over its operands, split among the model threads (lane_pool.hpp) when it is large and
/// its output is independent of its inputs' other words.
struct Job {
    Op op;
    const std::byte* a;
    const std::byte* b; ///< nullptr for one-operand operations
    std::byte* out;
    bool stream = false; ///< non-temporal output stores (set by run)

    void range(std::size_t from, std::size_t to) const noexcept {
        const std::size_t n = to - from;
        switch (op) {
        case Op::increment: dispatch<Op::increment>(a + from, nullptr, out + from, n, stream); break;
        case Op::add_u32: dispatch<Op::add_u32>(a + from, b + from, out + from, n, stream); break;
        case Op::add_f32: dispatch<Op::add_f32>(a + from, b + from, out + from, n, stream); break;
        }
    }

    static void piece(const void* ctx, std::size_t from, std::size_t to) noexcept {
        static_cast<const Job*>(ctx)->range(from, to);
    }

    void run(std::size_t n) {
        // Streamed only when the output overlaps neither input: an output written in place is in the cache already.
        stream = n >= stream_from(b == nullptr ? 1 : 2) && reinterpret_cast<std::uintptr_t>(out) % 4 == 0 &&
                 disjoint(a, out, n) && (b == nullptr || disjoint(b, out, n));
        if (n < 2 * k_piece || !independent(a, out, n) || (b != nullptr && !independent(b, out, n))) {
            range(0, n);
            return;
        }
        parallel_for(n, k_piece, &Job::piece, this);
    }
};

}  // namespace

// A cached store of a line that is not in the cache first reads it (from L3 or memory); a DMA engine's write does
// not. Past L2, that read costs a third of a two-input operation's time.
std::size_t stream_from(unsigned operands) noexcept {
    static const std::size_t l2 = [] {
        const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
        return v > 0 ? static_cast<std::size_t>(v) : std::size_t{1} << 20;
    }();
    return l2 / (operands + 1) + 1;
}

void increment_u32(const std::byte* a, std::byte* out, std::size_t n) {
    Job{Op::increment, a, nullptr, out}.run(n);
}

void add_u32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    Job{Op::add_u32, a, b, out}.run(n);
}

void add_f32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    Job{Op::add_f32, a, b, out}.run(n);
}

}  // namespace coyote::detail::sim::lanes
