// coyote-mpi collectives: names, MPI equivalents and the host reduction kernels.
#include <coyote/mpi/collectives_types.hpp>

#include <coyote/error.hpp>
#include "collectives/engine/engine.hpp"
#include "detail/reduce_ops.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace coyote::mpi {

const char* name(Datatype t) noexcept {
    switch (t) {
    case Datatype::int8: return "int8";
    case Datatype::uint8: return "uint8";
    case Datatype::int32: return "int32";
    case Datatype::uint32: return "uint32";
    case Datatype::int64: return "int64";
    case Datatype::uint64: return "uint64";
    case Datatype::float16: return "float16";
    case Datatype::bfloat16: return "bfloat16";
    case Datatype::float32: return "float32";
    case Datatype::float64: return "float64";
    }
    return "invalid datatype";
}

const char* name(Op o) noexcept {
    switch (o) {
    case Op::sum: return "sum";
    case Op::prod: return "prod";
    case Op::min: return "min";
    case Op::max: return "max";
    case Op::band: return "band";
    case Op::bor: return "bor";
    case Op::bxor: return "bxor";
    }
    return "invalid op";
}

MPI_Datatype mpi_datatype(Datatype t) noexcept {
    switch (t) {
    case Datatype::int8: return MPI_INT8_T;
    case Datatype::uint8: return MPI_UINT8_T;
    case Datatype::int32: return MPI_INT32_T;
    case Datatype::uint32: return MPI_UINT32_T;
    case Datatype::int64: return MPI_INT64_T;
    case Datatype::uint64: return MPI_UINT64_T;
    case Datatype::float16:
    case Datatype::bfloat16: return MPI_UINT16_T;
    case Datatype::float32: return MPI_FLOAT;
    case Datatype::float64: return MPI_DOUBLE;
    }
    return MPI_DATATYPE_NULL;
}

void check_op(Op op, Datatype type, const char* call) {
    if (!is_valid(type))
        throw_error(Errc::invalid_argument, call,
                    "datatype value " + std::to_string(static_cast<uint32_t>(type)) + " is not a coyote::mpi::Datatype");
    if (!is_valid(op))
        throw_error(Errc::invalid_argument, call,
                    "op value " + std::to_string(static_cast<uint32_t>(op)) + " is not a coyote::mpi::Op");
    if (is_floating(type) && (op == Op::band || op == Op::bor || op == Op::bxor))
        throw_error(Errc::invalid_argument, call,
                    std::string("reduction ") + name(op) + " is not defined for " + name(type) +
                        " (bitwise operations take integer types only)");
}

namespace {

// ---- element operations (detail/reduce_ops.hpp) ---------------------------------------------------

using ::coyote::detail::reduce_ops::Band;
using ::coyote::detail::reduce_ops::Bor;
using ::coyote::detail::reduce_ops::Bxor;
using ::coyote::detail::reduce_ops::Max;
using ::coyote::detail::reduce_ops::Min;
using ::coyote::detail::reduce_ops::Prod;
using ::coyote::detail::reduce_ops::Sum;

/// 16-bit float storage: convert, apply the float operation, round back.
template <template <typename> class F, bool Half>
struct Narrow {
    static uint16_t apply(uint16_t a, uint16_t b) noexcept {
        if constexpr (Half) {
            return float_to_half_bits(F<float>::apply(half_bits_to_float(a), half_bits_to_float(b)));
        } else {
            return float_to_bf16_bits(F<float>::apply(bf16_bits_to_float(a), bf16_bits_to_float(b)));
        }
    }
};

template <typename T, typename F>
void acc_kernel(void* dst, const void* src, std::size_t n) {
    T* __restrict d = static_cast<T*>(dst);
    const T* __restrict s = static_cast<const T*>(src);
    for (std::size_t i = 0; i < n; ++i) d[i] = F::apply(d[i], s[i]);
}

template <typename T, typename F>
void red3_kernel(void* dst, const void* a, const void* b, std::size_t n) {
    T* __restrict d = static_cast<T*>(dst);
    const T* __restrict x = static_cast<const T*>(a);
    const T* __restrict y = static_cast<const T*>(b);
    for (std::size_t i = 0; i < n; ++i) d[i] = F::apply(x[i], y[i]);
}

template <typename T, typename F>
constexpr ::coyote::detail::coll::Kernels kernels_for() noexcept {
    return {&acc_kernel<T, F>, &red3_kernel<T, F>};
}

/// The kernels of `op` on T: the arithmetic ops for every type, the bitwise ones for integers only (none otherwise).
template <typename T>
constexpr ::coyote::detail::coll::Kernels kernels_of(Op op) noexcept {
    if constexpr (std::is_integral_v<T>) {
        if (op == Op::band) return kernels_for<T, Band<T>>();
        if (op == Op::bor) return kernels_for<T, Bor<T>>();
        if (op == Op::bxor) return kernels_for<T, Bxor<T>>();
    }
    switch (op) {
    case Op::sum: return kernels_for<T, Sum<T>>();
    case Op::prod: return kernels_for<T, Prod<T>>();
    case Op::min: return kernels_for<T, Min<T>>();
    case Op::max: return kernels_for<T, Max<T>>();
    default: return {};
    }
}

template <bool Half>
constexpr ::coyote::detail::coll::Kernels narrow_kernels(Op op) noexcept {
    switch (op) {
    case Op::sum: return kernels_for<uint16_t, Narrow<Sum, Half>>();
    case Op::prod: return kernels_for<uint16_t, Narrow<Prod, Half>>();
    case Op::min: return kernels_for<uint16_t, Narrow<Min, Half>>();
    case Op::max: return kernels_for<uint16_t, Narrow<Max, Half>>();
    default: return {};
    }
}

// ---- MPI user operations for the 16-bit float types --------------------------------------------

template <Datatype T, Op O>
void mpi_user_fn(void* in, void* inout, int* len, MPI_Datatype*) {
    const auto k = ::coyote::detail::coll::kernels(T, O);
    k.acc(inout, in, static_cast<std::size_t>(*len > 0 ? *len : 0));
}

}  // namespace

MPI_Op mpi_op(Op o, Datatype t) {
    check_op(o, t, "mpi_op");
    if (t != Datatype::float16 && t != Datatype::bfloat16) {
        switch (o) {
        case Op::sum: return MPI_SUM;
        case Op::prod: return MPI_PROD;
        case Op::min: return MPI_MIN;
        case Op::max: return MPI_MAX;
        case Op::band: return MPI_BAND;
        case Op::bor: return MPI_BOR;
        case Op::bxor: return MPI_BXOR;
        }
    }
    static std::mutex mtx;
    static MPI_Op ops[2][4] = {{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL},
                               {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}};
    using Fn = void (*)(void*, void*, int*, MPI_Datatype*);
    static const Fn fns[2][4] = {
        {&mpi_user_fn<Datatype::float16, Op::sum>, &mpi_user_fn<Datatype::float16, Op::prod>,
         &mpi_user_fn<Datatype::float16, Op::min>, &mpi_user_fn<Datatype::float16, Op::max>},
        {&mpi_user_fn<Datatype::bfloat16, Op::sum>, &mpi_user_fn<Datatype::bfloat16, Op::prod>,
         &mpi_user_fn<Datatype::bfloat16, Op::min>, &mpi_user_fn<Datatype::bfloat16, Op::max>}};
    const std::size_t ti = t == Datatype::float16 ? 0 : 1;
    const auto oi = static_cast<std::size_t>(o);
    std::lock_guard lk(mtx);
    if (ops[ti][oi] == MPI_OP_NULL) {
        if (MPI_Op_create(fns[ti][oi], 1, &ops[ti][oi]) != MPI_SUCCESS)
            throw_error(Errc::mpi, "MPI_Op_create", std::string("user operation for ") + name(o) + " on " + name(t));
    }
    return ops[ti][oi];
}

}  // namespace coyote::mpi

namespace coyote::detail::coll {

using mpi::Datatype;
using mpi::Op;

Kernels kernels(Datatype t, Op o) noexcept {
    switch (t) {
    case Datatype::int8: return mpi::kernels_of<int8_t>(o);
    case Datatype::uint8: return mpi::kernels_of<uint8_t>(o);
    case Datatype::int32: return mpi::kernels_of<int32_t>(o);
    case Datatype::uint32: return mpi::kernels_of<uint32_t>(o);
    case Datatype::int64: return mpi::kernels_of<int64_t>(o);
    case Datatype::uint64: return mpi::kernels_of<uint64_t>(o);
    case Datatype::float16: return mpi::narrow_kernels<true>(o);
    case Datatype::bfloat16: return mpi::narrow_kernels<false>(o);
    case Datatype::float32: return mpi::kernels_of<float>(o);
    case Datatype::float64: return mpi::kernels_of<double>(o);
    }
    return {};
}

}  // namespace coyote::detail::coll

namespace coyote::mpi {

void reduce_local(void* dst, const void* src, std::size_t count, Datatype type, Op op) {
    check_op(op, type, "reduce_local");
    if (count == 0) return;
    if (dst == nullptr || src == nullptr)
        throw_error(Errc::invalid_argument, "reduce_local", "null buffer with count " + std::to_string(count));
    const auto k = ::coyote::detail::coll::kernels(type, op);
    if (dst == src) {
        // x op x: go through a copy so that restrict holds.
        std::vector<std::byte> tmp(count * size_of(type));
        std::memcpy(tmp.data(), src, tmp.size());
        k.acc(dst, tmp.data(), count);
        return;
    }
    k.acc(dst, src, count);
}

void reduce_local(void* dst, const void* a, const void* b, std::size_t count, Datatype type, Op op) {
    check_op(op, type, "reduce_local");
    if (count == 0) return;
    if (dst == nullptr || a == nullptr || b == nullptr)
        throw_error(Errc::invalid_argument, "reduce_local", "null buffer with count " + std::to_string(count));
    const auto k = ::coyote::detail::coll::kernels(type, op);
    if (dst == a && dst == b) {
        reduce_local(dst, b, count, type, op);
    } else if (dst == a) {
        k.acc(dst, b, count);
    } else if (dst == b) {
        k.acc(dst, a, count); // every operation here is commutative
    } else {
        k.red3(dst, a, b, count);
    }
}

}  // namespace coyote::mpi
