// pycoyote: bindings of the reconfiguration and service side (cRcnfg, cConn).
#pragma once

#include <pybind11/pybind11.h>

namespace pycoyote {

/// Binds CoyoteReconfig and _Conn (the raw client under pycoyote.CoyoteConn) into `m`.
void bind_service(pybind11::module_& m);

}  // namespace pycoyote
