// pycoyote: the CoyoteThread class (pyCoyote's cThread wrapper; sizes and offsets in elements).
#pragma once

#include <pybind11/pybind11.h>

namespace pycoyote {

/// Binds pycoyote.CoyoteThread into `m`.
void bind_thread(pybind11::module_& m);

}  // namespace pycoyote
