// pycoyote: the CoyoteBuffer class (a typed, zero-copy view with the buffer protocol).
#pragma once

#include <pybind11/pybind11.h>

namespace pycoyote {

/// Binds pycoyote.CoyoteBuffer into `m`.
void bind_buffer(pybind11::module_& m);

}  // namespace pycoyote
