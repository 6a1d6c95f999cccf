// coyote-mpi: the element operations of reductions (sum, prod, min, max, band, bor, bxor), shared by the MPI
// layer's host kernels and the sim `reduce` user-logic model. Header-only and inline: the callers' loops stay
// auto-vectorizable.
#pragma once

#include <bit>
#include <type_traits>

namespace coyote::detail::reduce_ops {

// Signed sums and products wrap (two's complement) like MPI implementations do: computed unsigned.

/// a + b
template <typename T>
struct Sum {
    static T apply(T a, T b) noexcept {
        if constexpr (std::is_integral_v<T>) {
            using U = std::make_unsigned_t<T>;
            return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
        } else {
            return a + b;
        }
    }
};

/// a * b (narrow integers in unsigned int: no promotion to signed int, no signed overflow)
template <typename T>
struct Prod {
    static T apply(T a, T b) noexcept {
        if constexpr (std::is_integral_v<T>) {
            using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
            return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
        } else {
            return a * b;
        }
    }
};

// Integer min / max keep the first operand unless the second compares smaller / larger. Floating ones do not depend
// on the operand order, since a reduction tree combines the same inputs in another order on each rank and every rank
// must get the same bits: a NaN operand wins (of two NaNs, the larger bit pattern), and -0 < +0.

/// Order-independent floating min (`max` false) or max of a and b.
template <typename T>
T float_pick(T a, T b, bool max) noexcept {
    using U = std::conditional_t<sizeof(T) == 8, unsigned long long, unsigned>;
    static_assert(sizeof(U) == sizeof(T), "float_pick takes 32- and 64-bit floating types");
    if (a < b) return max ? b : a;
    if (b < a) return max ? a : b;
    const U x = std::bit_cast<U>(a), y = std::bit_cast<U>(b);
    if (a == b) return std::bit_cast<T>(max ? (x & y) : (x | y)); // equal: the same bits, or +0 / -0
    if (a != a && b != b) return x < y ? b : a;
    return a != a ? a : b;
}

/// the smaller of a and b
template <typename T>
struct Min {
    static T apply(T a, T b) noexcept {
        if constexpr (std::is_floating_point_v<T>) {
            return float_pick(a, b, false);
        } else {
            return b < a ? b : a;
        }
    }
};

/// the larger of a and b
template <typename T>
struct Max {
    static T apply(T a, T b) noexcept {
        if constexpr (std::is_floating_point_v<T>) {
            return float_pick(a, b, true);
        } else {
            return a < b ? b : a;
        }
    }
};

/// a & b
template <typename T>
struct Band {
    static T apply(T a, T b) noexcept { return static_cast<T>(a & b); }
};

/// a | b
template <typename T>
struct Bor {
    static T apply(T a, T b) noexcept { return static_cast<T>(a | b); }
};

/// a ^ b
template <typename T>
struct Bxor {
    static T apply(T a, T b) noexcept { return static_cast<T>(a ^ b); }
};

}  // namespace coyote::detail::reduce_ops
