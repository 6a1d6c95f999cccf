// coyote-mpi sim backend: the 32-bit lane operations of the copy-like models (+1, int32 add, float32 add) over byte
// buffers, 64 bytes a step in 128-bit GCC/Clang vector types, so that they compile to SIMD at any optimisation level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace coyote::detail::sim::lanes {

/// 4 lanes of 32 bits (SSE2 on every x86-64; wider units combine them).
using U32x4 = uint32_t __attribute__((vector_size(16)));
using F32x4 = float __attribute__((vector_size(16)));

enum class Op { increment, add_u32, add_f32 };

/// One lane of `op`.
template <Op op>
inline uint32_t lane(uint32_t x, uint32_t y) {
    if constexpr (op == Op::increment) {
        return x + 1u;
    } else if constexpr (op == Op::add_u32) {
        return x + y;
    } else {
        float fx, fy;
        std::memcpy(&fx, &x, 4);
        std::memcpy(&fy, &y, 4);
        const float fz = fx + fy;
        uint32_t z;
        std::memcpy(&z, &fz, 4);
        return z;
    }
}

/// 16 bytes of `op` from a (and b) into out.
template <Op op>
inline void block(const std::byte* a, const std::byte* b, std::byte* out) {
    if constexpr (op == Op::add_f32) {
        F32x4 x, y;
        std::memcpy(&x, a, 16);
        std::memcpy(&y, b, 16);
        const auto z = F32x4(x + y);
        std::memcpy(out, &z, 16);
    } else if constexpr (op == Op::add_u32) {
        U32x4 x, y;
        std::memcpy(&x, a, 16);
        std::memcpy(&y, b, 16);
        const auto z = U32x4(x + y);
        std::memcpy(out, &z, 16);
    } else {
        U32x4 x;
        std::memcpy(&x, a, 16);
        const auto z = U32x4(x + 1u);
        std::memcpy(out, &z, 16);
    }
}

/// The 64-byte steps of `op` over [0, n & ~63).
template <Op op>
inline void blocks(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    for (std::size_t i = 0; i + 64 <= n; i += 64)
        for (std::size_t k = 0; k < 64; k += 16)
            block<op>(a + i + k, op == Op::increment ? a : b + i + k, out + i + k);
}

/// `op` over n bytes (a multiple of 4): 64 bytes per step, then single lanes. `b` is unused by increment.
template <Op op>
inline void apply(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    std::size_t i = n & ~std::size_t{63};
    blocks<op>(a, b, out, n);
    for (; i + 4 <= n; i += 4) {
        uint32_t x, y = 0;
        std::memcpy(&x, a + i, 4);
        if (b != nullptr) std::memcpy(&y, b + i, 4);
        const uint32_t z = lane<op>(x, y);
        std::memcpy(out + i, &z, 4);
    }
}

/// out = a + 1 per uint32 lane (wrapping).
inline void increment_u32(const std::byte* a, std::byte* out, std::size_t n) { apply<Op::increment>(a, nullptr, out, n); }

/// out = a + b per uint32 lane (two's complement wrap-around, as int32).
inline void add_u32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    apply<Op::add_u32>(a, b, out, n);
}

/// out = a + b per float32 lane.
inline void add_f32(const std::byte* a, const std::byte* b, std::byte* out, std::size_t n) {
    apply<Op::add_f32>(a, b, out, n);
}

}  // namespace coyote::detail::sim::lanes
