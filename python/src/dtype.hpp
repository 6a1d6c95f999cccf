// pycoyote: the element types a CoyoteBuffer can hold (pyCoyote's dtype names plus float16).
#pragma once

#include <cstddef>
#include <string>

namespace pycoyote {

/// One element type: its pyCoyote name, buffer-protocol format character and size.
struct Dtype {
    const char* name;   ///< canonical name ("int32", ...)
    const char* format; ///< struct-module format ("i", ...), what NumPy reads
    std::size_t itemsize;
};

/// The type named `name` (aliases: int = int32, uint = uint32); throws InvalidArgument naming the accepted ones.
const Dtype& dtype_by_name(const std::string& name);

/// `value` when it lies in 0 .. `max`; throws InvalidArgument (naming `call` and `what`) otherwise. Python ints that
/// bind to unsigned C++ parameters go through it, so that -1 says what is wrong rather than pybind11's TypeError.
unsigned long long checked_unsigned(long long value, unsigned long long max, const char* call, const char* what);

/// Bytes of `count` elements of `type`; throws InvalidArgument (naming `call` and `what`) for a negative count or
/// more than `limit` bytes.
std::size_t checked_bytes(long long count, const Dtype& type, std::size_t limit, const char* call,
                          const std::string& what = "element count");

}  // namespace pycoyote
