// pycoyote: the pycoyote._core extension module (CoyoteThread, CoyoteBuffer, CoyoteReconfig, the
// service client, the exception hierarchy).
#include <pybind11/pybind11.h>

#include "buffer.hpp"
#include "errors.hpp"
#include "service.hpp"
#include "state.hpp"
#include "thread.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "Coyote host runtime bindings (pyCoyote-compatible).";
    pycoyote::register_errors(m);
    pycoyote::bind_buffer(m);
    pycoyote::bind_thread(m);
    pycoyote::bind_service(m);
    // Threads with an interrupt callback stop before the interpreter finalises (see state.hpp).
    py::module_::import("atexit").attr("register")(py::cpp_function(&pycoyote::shutdown_interrupt_threads));
}
