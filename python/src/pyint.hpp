// pycoyote: Int, the integer parameter type of the bindings: any Python int (or object with __index__, such as a
// NumPy integer) binds, so that a value outside the C++ range is an InvalidArgumentError naming the argument
// instead of pybind11's TypeError ("incompatible function arguments") with a signature dump.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace pycoyote {

struct Int {
    long long value = 0;
    int overflow = 0;           ///< -1 below, +1 above the long long range
    bool fits_u64 = false;      ///< above LLONG_MAX but within 64 bits unsigned: `big`
    unsigned long long big = 0;
    std::string text;           ///< the decimal text of a value outside the long long range

    Int() = default;
    Int(long long v) : value(v) {} // NOLINT: defaults of bound functions are written as plain numbers

    /// The value; InvalidArgument naming `call` and `what` when it does not fit a long long.
    long long get(const char* call, const char* what) const;
    /// The value for the bindings' range checks, which name the argument; a value beyond 64 bits is an
    /// InvalidArgument showing it.
    operator long long() const { return get("argument", "integer"); } // NOLINT: as the long long it replaces
    /// The value in 0 .. `max` (up to 2^64 - 1); InvalidArgument naming `call` and `what` otherwise.
    unsigned long long get_unsigned(unsigned long long max, const char* call, const char* what) const;
    /// The value in `lo` .. `hi`; InvalidArgument naming `call` and `what` otherwise.
    long long get_in(long long lo, long long hi, const char* call, const char* what) const;
};

}  // namespace pycoyote

namespace pybind11::detail {

template <>
struct type_caster<pycoyote::Int> {
public:
    PYBIND11_TYPE_CASTER(pycoyote::Int, const_name("int"));
    bool load(handle src, bool convert);
    static handle cast(const pycoyote::Int& v, return_value_policy, handle) { return PyLong_FromLongLong(v.value); }
};

}  // namespace pybind11::detail
