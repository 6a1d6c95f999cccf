// pycoyote: the pycoyote.CoyoteError exception hierarchy and the translation of coyote::Error into it.
#pragma once

#include <pybind11/pybind11.h>

namespace pycoyote {

/// Creates CoyoteError (a RuntimeError) and one subclass per coyote::Errc in `m`, and registers the translator
/// that raises them for every coyote::Error thrown by a bound function (same message text).
void register_errors(pybind11::module_& m);

}  // namespace pycoyote
