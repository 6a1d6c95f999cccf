// pycoyote: the pycoyote._core extension module (CoyoteThread, CoyoteBuffer, the exception hierarchy).
#include <pybind11/pybind11.h>

#include "buffer.hpp"
#include "errors.hpp"
#include "thread.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "Coyote host runtime bindings (pyCoyote-compatible).";
    pycoyote::register_errors(m);
    pycoyote::bind_buffer(m);
    pycoyote::bind_thread(m);
}
