// coyote-mpi collectives: element types, reduction operations and host reduction kernels.
#pragma once

#include <mpi.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace coyote::mpi {

/// Element types of the collective library.
enum class Datatype : uint32_t { int8, uint8, int32, uint32, int64, uint64, float16, bfloat16, float32, float64 };

/// Reduction operations. Bitwise operations (band, bor, bxor) are defined for integer types only.
enum class Op : uint32_t { sum, prod, min, max, band, bor, bxor };

/// IEEE 754 binary16, stored as its 16 bits; arithmetic converts to float and rounds back (nearest even).
struct float16 {
    uint16_t bits = 0;
};
/// bfloat16 (the upper half of a binary32), stored as its 16 bits; arithmetic as float16.
struct bfloat16 {
    uint16_t bits = 0;
};

/// float -> binary16 bits, round to nearest even; overflow gives infinity, NaN stays NaN (quiet).
constexpr uint16_t float_to_half_bits(float f) noexcept {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) // infinity or NaN
        return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u));
    if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u); // rounds to >= 65520: infinity
    if (ax < 0x38800000u) {
        // Below the smallest normal (2^-14): adding 0.5 aligns the subnormal mantissa at the bottom of the
        // float's mantissa, and the float addition rounds it to nearest even.
        const float shifted = std::bit_cast<float>(ax) + 0.5f;
        return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(shifted) - 0x3f000000u));
    }
    const uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000000u + 0xfffu + odd; // rebias the exponent (127 -> 15) and round the 13 dropped bits
    return static_cast<uint16_t>(sign | (ax >> 13));
}

/// binary16 bits -> float (exact).
constexpr float half_bits_to_float(uint16_t h) noexcept {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    const uint32_t m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return std::bit_cast<float>(sign);
        const float v = static_cast<float>(m) * 5.9604644775390625e-8f; // m * 2^-24, exact
        return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(v));
    }
    if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

/// float -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet).
constexpr uint16_t float_to_bf16_bits(float f) noexcept {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/// bfloat16 bits -> float (exact).
constexpr float bf16_bits_to_float(uint16_t b) noexcept { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

constexpr float16 to_float16(float f) noexcept { return float16{float_to_half_bits(f)}; }
constexpr float to_float(float16 h) noexcept { return half_bits_to_float(h.bits); }
constexpr bfloat16 to_bfloat16(float f) noexcept { return bfloat16{float_to_bf16_bits(f)}; }
constexpr float to_float(bfloat16 b) noexcept { return bf16_bits_to_float(b.bits); }

/// Bytes per element.
constexpr std::size_t size_of(Datatype t) noexcept {
    switch (t) {
    case Datatype::int8:
    case Datatype::uint8: return 1;
    case Datatype::float16:
    case Datatype::bfloat16: return 2;
    case Datatype::int32:
    case Datatype::uint32:
    case Datatype::float32: return 4;
    case Datatype::int64:
    case Datatype::uint64:
    case Datatype::float64: return 8;
    }
    return 0;
}

/// True for float16, bfloat16, float32 and float64.
constexpr bool is_floating(Datatype t) noexcept {
    return t == Datatype::float16 || t == Datatype::bfloat16 || t == Datatype::float32 || t == Datatype::float64;
}

/// True if `t` is one of the ten types (guards against values cast from integers).
constexpr bool is_valid(Datatype t) noexcept { return static_cast<uint32_t>(t) <= static_cast<uint32_t>(Datatype::float64); }
constexpr bool is_valid(Op o) noexcept { return static_cast<uint32_t>(o) <= static_cast<uint32_t>(Op::bxor); }

/// "int8", ..., "float64".
const char* name(Datatype t) noexcept;
/// "sum", "prod", "min", "max", "band", "bor", "bxor".
const char* name(Op o) noexcept;

/// The matching MPI datatype (float16 / bfloat16: MPI_UINT16_T, their storage; combine with mpi_op()).
MPI_Datatype mpi_datatype(Datatype t) noexcept;
/// The matching MPI operation; for float16 / bfloat16 a user-defined operation with this library's arithmetic
/// (created on first use, freed at MPI_Finalize).
MPI_Op mpi_op(Op o, Datatype t);

/// The Datatype of a C++ element type.
template <typename T>
constexpr Datatype datatype_of() noexcept;
template <> constexpr Datatype datatype_of<int8_t>() noexcept { return Datatype::int8; }
template <> constexpr Datatype datatype_of<uint8_t>() noexcept { return Datatype::uint8; }
template <> constexpr Datatype datatype_of<int32_t>() noexcept { return Datatype::int32; }
template <> constexpr Datatype datatype_of<uint32_t>() noexcept { return Datatype::uint32; }
template <> constexpr Datatype datatype_of<int64_t>() noexcept { return Datatype::int64; }
template <> constexpr Datatype datatype_of<uint64_t>() noexcept { return Datatype::uint64; }
template <> constexpr Datatype datatype_of<float16>() noexcept { return Datatype::float16; }
template <> constexpr Datatype datatype_of<bfloat16>() noexcept { return Datatype::bfloat16; }
template <> constexpr Datatype datatype_of<float>() noexcept { return Datatype::float32; }
template <> constexpr Datatype datatype_of<double>() noexcept { return Datatype::float64; }

/// Throws coyote::Error (Errc::invalid_argument) naming `call` if `op` is not defined for `type`
/// (bitwise operations on floating types) or either value is out of range.
void check_op(Op op, Datatype type, const char* call);

/// dst[i] = dst[i] op src[i] for i < count (MPI_Reduce_local). dst and src must not overlap unless equal.
void reduce_local(void* dst, const void* src, std::size_t count, Datatype type, Op op);
/// dst[i] = a[i] op b[i]; dst may equal a or b, other overlaps are not allowed.
void reduce_local(void* dst, const void* a, const void* b, std::size_t count, Datatype type, Op op);

}  // namespace coyote::mpi
