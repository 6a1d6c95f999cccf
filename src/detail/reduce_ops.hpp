// coyote-mpi: the element operations of reductions (sum, prod, min, max, band, bor, bxor), shared by the MPI
// layer's host kernels and the sim `reduce` user-logic model. Header-only and inline: the callers' loops stay
// auto-vectorizable.
#pragma once

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

// min / max keep the first operand unless the second compares smaller / larger (also for NaN operands).

/// the smaller of a and b
template <typename T>
struct Min {
    static T apply(T a, T b) noexcept { return b < a ? b : a; }
};

/// the larger of a and b
template <typename T>
struct Max {
    static T apply(T a, T b) noexcept { return a < b ? b : a; }
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
